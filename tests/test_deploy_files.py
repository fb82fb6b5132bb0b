"""Static checks of the deployment files: deploy/ray, deploy/kuberay, deploy/docker.

Nothing is started (no Ray cluster, Docker or Kubernetes). Each file is checked by
the code that will read it wherever that code is importable here:

- cluster-launcher YAMLs: Ray's own ``prepare_config`` + ``validate_config``;
- RayCluster: Ray's own KubeRay autoscaler translation of the custom resource,
  and its ``rayStartParams`` through Ray's ``ray start`` option parser;
- every ``stakeray ...`` command in the files (and in docs/operations.md): the
  project's own argument parser; every ``ray start`` and ``ray job submit``: Ray's
  click commands, parsed without running.

Only the KubeRay field names and types are hand-written (a compact JSON schema
taken from KubeRay's ``raycluster_types.go`` / ``rayjob_types.go``), since the
operator's CRD is not installable here; so are the project's own conventions
(resources, ports, token authentication, images).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import re
import shlex
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import jsonschema
import pytest
import ray
import yaml

from cluster.cli import build_parser
from cluster.config.schema import load_config, load_workload

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
ONPREM = DEPLOY / "ray" / "onprem.yaml"
AWS = DEPLOY / "ray" / "aws-gpu.yaml"
LAUNCHERS = (ONPREM, AWS)
RAYCLUSTER = DEPLOY / "kuberay" / "raycluster.yaml"
RAYJOB = DEPLOY / "kuberay" / "rayjob.yaml"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
OPERATIONS = ROOT / "docs" / "operations.md"

PORTS = {"gcs-server": 6379, "dashboard": 8265, "client": 10001, "metrics": 8080}
TOKEN_SECRET = "stakeray-ray-token"
# Where the repository sits on the nodes: launcher nodes (~ of ssh_user ubuntu), images.
REPO_PREFIXES = ("~/stakeray/", "/home/ubuntu/stakeray/", "/opt/stakeray/")
# Shell variables the launcher sets on the nodes, with stand-in values for parsing.
SHELL_VARS = {"RAY_HEAD_IP": "192.0.2.10", "HOME": "/home/ubuntu"}

NETWORK = load_config(DEPLOY / "network.yaml").network.hosts
COORDINATOR = NETWORK.coordinator_resource or "stakeray-coordinator"
COPROCESSOR = NETWORK.coprocessor_resource or "stakeray-coprocessor"
GPUS_NEEDED = NETWORK.gpus_per_coprocessor_host * NETWORK.coprocessor_hosts


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def load_docs(path: Path) -> list[dict[str, Any]]:
    """The YAML documents of ``path`` (empty ones dropped)."""
    with path.open() as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc is not None]


def docs_for_collection(path: Path) -> list[dict[str, Any]]:
    """Like load_docs, but a broken or missing file yields nothing: collecting the tests
    must not fail, test_yaml_loads (or the test using the file) reports it."""
    try:
        return load_docs(path)
    except (OSError, yaml.YAMLError):
        return []


def doc_of_kind(path: Path, kind: str) -> dict[str, Any]:
    (doc,) = [d for d in load_docs(path) if d.get("kind") == kind]
    return doc


# --- shell command lines ------------------------------------------------------------------

OPERATORS = {"&&", "||", ";", "|", "&", ";;", "(", ")"}
REDIRECTS = {">", ">>", "<", "<<", ">&", "&>", ">|", "<&"}
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


@dataclass(frozen=True)
class Command:
    """One simple shell command found in a file: its env prefix and its argv."""

    source: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()

    @property
    def text(self) -> str:
        return shlex.join(self.argv)

    @property
    def id(self) -> str:
        text = " ".join(self.argv)
        return f"{self.source}: {text[:70]}{'...' if len(text) > 70 else ''}"


def shell_tokens(line: str) -> list[str]:
    """Split a shell line into words and operators (quotes removed, nothing expanded)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    return list(lexer)


def simple_commands(tokens: list[str]) -> Iterator[list[str]]:
    """Split tokens at ``&&``, ``;``, pipes...; drop redirections such as ``2>&1``."""
    current: list[str] = []
    skip_next = False
    for token in tokens:
        if skip_next:
            skip_next = False
        elif token in OPERATORS:
            if current:
                yield current
            current = []
        elif token in REDIRECTS:
            if current and current[-1].isdigit():
                current.pop()  # the fd of `2>`
            skip_next = True
        else:
            current.append(token)
    if current:
        yield current


def substitute(word: str) -> str:
    """Replace the shell variables the nodes define by stand-in values."""
    return re.sub(
        r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?",
        lambda m: SHELL_VARS.get(m.group(1), m.group(0)),
        word,
    )


def commands_in(line: str, source: str) -> Iterator[Command]:
    """Every simple command of ``line``, including those nested in ``bash -c "..."``,
    ``ray exec CONFIG "..."``, ``ray job submit ... -- CMD`` and ``kubectl exec ... -- CMD``.
    """
    for words in simple_commands(shell_tokens(line)):
        yield from command_from_words(words, source)


def command_from_words(words: list[str], source: str) -> Iterator[Command]:
    env: list[tuple[str, str]] = []
    while words and ASSIGNMENT.match(words[0]):
        name, _, value = words.pop(0).partition("=")
        env.append((name, value))
    if not words:
        return
    argv = tuple(substitute(w) for w in words)
    yield Command(source, argv, tuple(env))
    program, rest = argv[0], list(argv[1:])
    if program in ("bash", "sh") and len(rest) >= 2 and rest[0].startswith("-") and "c" in rest[0]:
        yield from commands_in(rest[1], source)
    elif program == "ray" and rest[:1] == ["exec"]:
        positional = [w for w in rest[1:] if not w.startswith("-")]
        if len(positional) >= 2:  # CONFIG CMD
            yield from commands_in(positional[1], source)
    elif program in ("ray", "kubectl") and "--" in rest:
        yield from command_from_words(rest[rest.index("--") + 1 :], source)


def joined_lines(text: str) -> Iterator[str]:
    """Lines of shell text with backslash continuations joined."""
    yield from text.replace("\\\n", " ").splitlines()


def yaml_strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from yaml_strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from yaml_strings(item)


PROMPT = re.compile(r"^\s*#\s*\$ (.+)$")  # a `# $ command` line in a comment


def prompt_lines(path: Path) -> Iterator[str]:
    """The ``# $ ...`` example commands in the comments of a deploy file."""
    for line in path.read_text().splitlines():
        match = PROMPT.match(line)
        if match:
            yield match.group(1)


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


def bash_blocks(path: Path) -> Iterator[str]:
    """Lines of the ```bash fenced blocks of a Markdown file."""
    inside = False
    block: list[str] = []
    for line in path.read_text().splitlines():
        if line.strip().startswith("```"):
            if inside:
                yield from joined_lines("\n".join(block))
                block = []
            inside = not inside and line.strip() in ("```bash", "```sh", "```shell")
            continue
        if inside:
            block.append(line)


def deploy_yaml_files() -> list[Path]:
    return sorted(DEPLOY.rglob("*.yaml"))


def all_commands() -> list[Command]:
    """Every command in the deploy files, their comment examples and docs/operations.md."""
    found: list[Command] = []
    mentions = re.compile(r"(^|[\s\"'])(stakeray|ray)\s")
    for path in deploy_yaml_files():
        for doc in docs_for_collection(path):
            for text in yaml_strings(doc):
                if mentions.search(text):
                    for line in joined_lines(text):
                        found += commands_in(line, rel(path))
        for line in prompt_lines(path):
            found += commands_in(line, rel(path) + " (comment)")
    if DOCKERFILE.exists():
        for keyword, args in dockerfile_instructions(DOCKERFILE):
            if keyword == "RUN":
                found += commands_in(args, rel(DOCKERFILE))
        for line in prompt_lines(DOCKERFILE):
            found += commands_in(line, rel(DOCKERFILE) + " (comment)")
    if OPERATIONS.exists():  # being rewritten elsewhere; check whatever it holds
        for line in bash_blocks(OPERATIONS):
            found += commands_in(line, rel(OPERATIONS))
    return found


COMMANDS = all_commands()
# A bare `stakeray` is a name (cluster_name, metadata.name), not a command line.
STAKERAY = [c for c in COMMANDS if c.argv[0] == "stakeray" and len(c.argv) > 1]
RAY_START = [c for c in COMMANDS if c.argv[:2] == ("ray", "start")]
RAY_JOB_SUBMIT = [c for c in COMMANDS if c.argv[:3] == ("ray", "job", "submit")]


def parse_stakeray(argv: tuple[str, ...], where: str) -> Any:
    """``cluster.cli``'s parse of ``stakeray ARGV``; a refusal fails the test, naming it."""
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            return build_parser().parse_args(list(argv))
        except SystemExit as exc:
            if exc.code == 0:  # --help
                return None
            reason = (stderr.getvalue().strip().splitlines() or ["refused"])[-1]
    pytest.fail(f"`stakeray {shlex.join(argv)}` in {where}: {reason}")


def click_parse(command: click.Command, name: str, args: list[str], where: str) -> dict[str, Any]:
    """Parse ``args`` with a click command (nothing runs); unknown or bad options fail."""
    try:
        with command.make_context(name, list(args)) as ctx:
            return dict(ctx.params)
    except click.ClickException as exc:
        pytest.fail(f"`{name} {shlex.join(args)}` in {where}: {exc.format_message()}")


def ray_start_params(args: list[str], where: str) -> dict[str, Any]:
    from ray.scripts.scripts import start

    return click_parse(start, "ray start", args, where)


def resources_of(params: dict[str, Any]) -> dict[str, float]:
    return json.loads(params["resources"]) if params.get("resources") else {}


# --- YAML ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", deploy_yaml_files(), ids=rel)
def test_yaml_loads(path: Path) -> None:
    assert load_docs(path), f"{rel(path)}: no YAML documents"


def test_network_and_workload_pass_stakerays_validation() -> None:
    """The configs the manifests deploy and submit are valid stakeray files."""
    config = load_config(DEPLOY / "network.yaml")
    assert config.workload is None  # `stakeray up` takes the network; work comes by submit
    workload = load_workload(DEPLOY / "workload.yaml")
    assert workload.count and {m.kind for m in workload.mix} >= {"matmul", "fft", "sort"}


def test_token_authentication_is_never_turned_off() -> None:
    """Ray 2.60 authenticates with a token by default; no deploy file may opt out."""
    for path in [*DEPLOY.rglob("*"), ROOT / ".dockerignore"]:
        if path.is_file():
            text = path.read_text()
            assert not re.search(r"RAY_AUTH_MODE\W{1,4}disabled", text), rel(path)


# --- cluster launcher (ray up) ------------------------------------------------------------


def prepared(path: Path) -> dict[str, Any]:
    """The launcher config as `ray up` sees it: Ray's prepare_config, then its validation.

    prepare_config merges the provider's defaults.yaml shipped in the wheel (the AWS
    one too: no boto3 call or credentials happen before bootstrapping) and, for the
    local provider, builds its single node type from worker_ips.
    """
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = prepare_config(copy.deepcopy(load_docs(path)[0]))
    validate_config(config)
    return config


def start_commands(commands: list[str], where: str) -> list[tuple[Command, dict[str, Any]]]:
    found = []
    for text in commands:
        for command in commands_in(text, where):
            if command.argv[:2] == ("ray", "start"):
                found.append((command, ray_start_params(list(command.argv[2:]), where)))
    return found


@pytest.mark.parametrize("path", LAUNCHERS, ids=rel)
def test_launcher_passes_rays_validation(path: Path) -> None:
    config = prepared(path)
    commands = [c for key in config if key.endswith("_commands") for c in config[key]]
    assert all(isinstance(c, str) for c in commands), "a command parsed as a mapping: quote it"


@pytest.mark.parametrize("path", LAUNCHERS, ids=rel)
def test_launcher_head_offers_the_coordinator(path: Path) -> None:
    config = prepared(path)
    where = rel(path)
    commands = config["head_start_ray_commands"]
    assert commands[0] == "ray stop", "stop a running Ray before starting the head"
    ((command, params),) = start_commands(commands, where)
    assert params["head"]
    assert params["port"] == PORTS["gcs-server"]
    assert params["dashboard_host"] == "0.0.0.0"
    assert params["dashboard_port"] == PORTS["dashboard"]
    assert params["ray_client_server_port"] == PORTS["client"]
    assert params["metrics_export_port"] == PORTS["metrics"]
    assert params["autoscaling_config"] == "~/ray_bootstrap_config.yaml"
    assert resources_of(params) == {COORDINATOR: 1}
    assert dict(command.env).get("RAY_AUTH_MODE") == "token"


@pytest.mark.parametrize("path", LAUNCHERS, ids=rel)
def test_launcher_gpu_workers_offer_gpus_and_the_coprocessor_resource(path: Path) -> None:
    config = prepared(path)
    where = rel(path)
    commands = config["worker_start_ray_commands"]
    assert commands[0] == "ray stop"
    ((command, params),) = start_commands(commands, where)
    assert not params["head"]
    assert params["address"] == f"{SHELL_VARS['RAY_HEAD_IP']}:{PORTS['gcs-server']}"
    assert params["num_gpus"] == 1
    assert params["metrics_export_port"] == PORTS["metrics"]
    assert resources_of(params) == {COPROCESSOR: 1}
    assert dict(command.env).get("RAY_AUTH_MODE") == "token"
    # Per node type (AWS): the head type alone has the coordinator resource, every
    # worker type the coprocessor resource and GPUs.
    head_type = config["head_node_type"]
    for name, node_type in config["available_node_types"].items():
        declared = node_type.get("resources", {})
        if name == head_type:
            assert COPROCESSOR not in declared and declared.get("GPU", 0) == 0
        else:
            assert COORDINATOR not in declared
            if declared:  # stated resources must agree with the start command
                assert declared.get(COPROCESSOR) == 1 and declared.get("GPU") == 1


@pytest.mark.parametrize("path", LAUNCHERS, ids=rel)
def test_launcher_keeps_enough_gpus_for_the_network(path: Path) -> None:
    """`stakeray up` refuses unless the GPUs the network's coprocessor hosts need are up."""
    config = prepared(path)
    ((_, params),) = start_commands(config["worker_start_ray_commands"], rel(path))
    gpus = 0.0
    # min_workers counts worker nodes of a type; the local provider's single type is
    # also the head's, and its min_workers is len(worker_ips).
    for node_type in config["available_node_types"].values():
        per_node = node_type.get("resources", {}).get("GPU", params["num_gpus"])
        gpus += node_type["min_workers"] * per_node
    if config["provider"]["type"] == "local":
        assert gpus == len(config["provider"]["worker_ips"]) * params["num_gpus"]
    assert gpus >= GPUS_NEEDED, f"{rel(path)}: {gpus} GPUs at least, network needs {GPUS_NEEDED}"


@pytest.mark.parametrize("path", LAUNCHERS, ids=rel)
def test_launcher_installs_stakeray_on_every_node(path: Path) -> None:
    config = prepared(path)  # setup_commands are merged into head_/worker_setup_commands
    install = re.compile(r"pip install .*stakeray(\[[a-z,]+\])?")
    head = [m for c in config["head_setup_commands"] if (m := install.search(c))]
    workers = [m for c in config["worker_setup_commands"] if (m := install.search(c))]
    assert head, "the head does not install stakeray"
    assert any("[gpu]" in m.group(0) for m in workers), "GPU workers do not install stakeray[gpu]"
    assert config["file_mounts"].get("~/stakeray") == ".", "the repository is not synced"
    assert any("/data/stakeray" in c for c in config["head_setup_commands"])
    # The token file is synced so that workers join a token-authenticated head.
    assert "~/.ray/auth_token" in config["file_mounts"]


# --- KubeRay ------------------------------------------------------------------------------

STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
INT = {"type": "integer"}
# corev1.Container's fields: strict, so that a misspelt container field fails too.
CONTAINER = {
    "type": "object",
    "required": ["name", "image"],
    "additionalProperties": False,
    "properties": {
        name: {}
        for name in [
            *("name", "image", "command", "args", "workingDir", "ports", "envFrom", "env"),
            *("resources", "resizePolicy", "restartPolicy", "volumeMounts", "volumeDevices"),
            *("livenessProbe", "readinessProbe", "startupProbe", "lifecycle"),
            *("terminationMessagePath", "terminationMessagePolicy", "imagePullPolicy"),
            *("securityContext", "stdin", "stdinOnce", "tty"),
        ]
    }
    | {"name": {"type": "string"}, "image": {"type": "string", "minLength": 1}},
}
POD_TEMPLATE = {
    "type": "object",
    "required": ["spec"],
    "additionalProperties": False,
    "properties": {
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "required": ["containers"],
            "properties": {"containers": {"type": "array", "minItems": 1, "items": CONTAINER}},
        },
    },
}
# From ray-project/kuberay ray-operator/apis/ray/v1/raycluster_types.go (HeadGroupSpec,
# WorkerGroupSpec, AutoscalerOptions, AuthOptions, RayClusterSpec).
HEAD_GROUP = {
    "type": "object",
    "required": ["template"],
    "additionalProperties": False,
    "properties": {
        "template": POD_TEMPLATE,
        "headService": {"type": "object"},
        "enableIngress": {"type": "boolean"},
        "ingressOptions": {"type": "object"},
        "resources": STRING_MAP,
        "labels": STRING_MAP,
        "rayStartParams": STRING_MAP,
        "serviceType": {"type": "string"},
    },
}
WORKER_GROUP = {
    "type": "object",
    "required": ["groupName", "template"],
    "additionalProperties": False,
    "properties": {
        "suspend": {"type": "boolean"},
        "groupName": {"type": "string"},
        "replicas": INT,
        "minReplicas": INT,
        "maxReplicas": INT,
        "idleTimeoutSeconds": INT,
        "priority": INT,
        "resources": STRING_MAP,
        "labels": STRING_MAP,
        "rayStartParams": STRING_MAP,
        "template": POD_TEMPLATE,
        "scaleStrategy": {"type": "object"},
        "numOfHosts": INT,
    },
}
RAY_CLUSTER_SPEC = {
    "type": "object",
    "required": ["headGroupSpec"],
    "additionalProperties": False,
    "properties": {
        "upgradeStrategy": {"type": "object"},
        "authOptions": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "enableK8sTokenAuth": {"type": "boolean"},
                "secretName": {"type": "string"},
                "mode": {"enum": ["disabled", "token"]},
            },
        },
        "suspend": {"type": "boolean"},
        "managedBy": {"type": "string"},
        "autoscalerOptions": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "resources": {"type": "object"},
                "image": {"type": "string"},
                "imagePullPolicy": {"type": "string"},
                "securityContext": {"type": "object"},
                "idleTimeoutSeconds": INT,
                "upscalingMode": {"enum": ["Default", "Aggressive", "Conservative"]},
                "version": {"enum": ["v1", "v2"]},
                "env": {"type": "array"},
                "envFrom": {"type": "array"},
                "volumeMounts": {"type": "array"},
                "command": {"type": "array"},
                "args": {"type": "array"},
            },
        },
        "headServiceAnnotations": STRING_MAP,
        "enableInTreeAutoscaling": {"type": "boolean"},
        "gcsFaultToleranceOptions": {"type": "object"},
        "headGroupSpec": HEAD_GROUP,
        "rayVersion": {"type": "string"},
        "workerGroupSpecs": {"type": "array", "items": WORKER_GROUP},
    },
}
# From ray-operator/apis/ray/v1/rayjob_types.go (RayJobSpec).
RAY_JOB_SPEC = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "activeDeadlineSeconds": {"type": "integer", "exclusiveMinimum": 0},
        "backoffLimit": {"type": "integer", "minimum": 0},
        "rayClusterSpec": RAY_CLUSTER_SPEC,
        "submitterPodTemplate": POD_TEMPLATE,
        "metadata": STRING_MAP,
        "clusterSelector": STRING_MAP,
        "submitterConfig": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"backoffLimit": INT},
        },
        "managedBy": {"type": "string"},
        "deletionStrategy": {"type": "object"},
        "entrypoint": {"type": "string"},
        "runtimeEnvYAML": {"type": "string"},
        "jobId": {"type": "string"},
        "submissionMode": {"enum": ["K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"]},
        "entrypointResources": {"type": "string"},
        "entrypointNumCpus": {"type": "number"},
        "entrypointNumGpus": {"type": "number"},
        "ttlSecondsAfterFinished": {"type": "integer", "minimum": 0},
        "shutdownAfterJobFinishes": {"type": "boolean"},
        "suspend": {"type": "boolean"},
    },
}


DNS_LABEL = "^[a-z]([-a-z0-9]*[a-z0-9])?$"  # KubeRay wants DNS-1035 names


def resource_schema(kind: str, api_version: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string", "pattern": DNS_LABEL}},
            },
            "spec": spec,
        },
    }


SCHEMAS = {
    "RayCluster": resource_schema("RayCluster", "ray.io/v1", RAY_CLUSTER_SPEC),
    "RayJob": resource_schema("RayJob", "ray.io/v1", RAY_JOB_SPEC),
    "PersistentVolumeClaim": resource_schema(
        "PersistentVolumeClaim",
        "v1",
        {
            "type": "object",
            "required": ["accessModes", "resources"],
            "properties": {
                "accessModes": {"type": "array", "minItems": 1},
                "resources": {
                    "type": "object",
                    "required": ["requests"],
                    "properties": {"requests": {"required": ["storage"]}},
                },
            },
        },
    ),
}


def source_id(value: Any) -> str:
    """Parametrize ids: the file for strings, the kind for documents."""
    return value if isinstance(value, str) else str(value.get("kind", ""))


def kuberay_docs() -> list[tuple[str, dict[str, Any]]]:
    return [(rel(p), d) for p in (RAYCLUSTER, RAYJOB) for d in docs_for_collection(p)]


@pytest.mark.parametrize(("source", "doc"), kuberay_docs(), ids=source_id)
def test_kuberay_document_matches_the_crd_fields(source: str, doc: dict[str, Any]) -> None:
    kind = doc.get("kind")
    assert kind in SCHEMAS, f"{source}: unexpected document kind {kind!r}"
    errors = sorted(jsonschema.Draft202012Validator(SCHEMAS[kind]).iter_errors(doc), key=str)
    assert not errors, "\n".join(
        f"{source} {kind} {'.'.join(map(str, e.absolute_path))}: {e.message}" for e in errors
    )


def ray_clusters() -> list[tuple[str, dict[str, Any]]]:
    """The RayCluster, and the RayJob's cluster if it embeds one (rayClusterSpec)."""
    found = [(rel(RAYCLUSTER), d) for d in docs_for_collection(RAYCLUSTER)]
    found = [(source, d) for source, d in found if d.get("kind") == "RayCluster"]
    for job in docs_for_collection(RAYJOB):
        if "rayClusterSpec" in job.get("spec", {}):
            embedded = {**job, "kind": "RayCluster", "spec": job["spec"]["rayClusterSpec"]}
            found.append((rel(RAYJOB), embedded))
    return found


@pytest.mark.parametrize(("source", "cr"), ray_clusters(), ids=source_id)
def test_kuberay_autoscaler_sees_the_node_types(source: str, cr: dict[str, Any]) -> None:
    """Ray's own translation of the RayCluster (what its autoscaler will plan with)."""
    from ray.autoscaler._private.kuberay.autoscaling_config import (
        _derive_autoscaling_config_from_ray_cr,
    )
    from ray.autoscaler._private.util import validate_config

    cr = copy.deepcopy(cr)
    cr["metadata"].setdefault("namespace", "default")  # set by the API server
    config = _derive_autoscaling_config_from_ray_cr(cr)
    validate_config(config)  # also done inside; kept explicit
    types = config["available_node_types"]
    head = types.pop(config["head_node_type"])["resources"]
    assert head.get(COORDINATOR) == 1 and COPROCESSOR not in head and "GPU" not in head
    assert set(types) == {"cpu", "gpu"}
    gpu, cpu = types["gpu"]["resources"], types["cpu"]["resources"]
    assert gpu.get("GPU") == 1 and gpu.get(COPROCESSOR) == 1 and COORDINATOR not in gpu
    assert "GPU" not in cpu and COPROCESSOR not in cpu and COORDINATOR not in cpu
    gpus = types["gpu"]["min_workers"] * gpu["GPU"]
    assert gpus >= GPUS_NEEDED, f"{source}: {gpus} GPUs at minimum, network needs {GPUS_NEEDED}"


def groups(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    yield "head", spec["headGroupSpec"]
    for group in spec.get("workerGroupSpecs", []):
        yield group["groupName"], group


@pytest.mark.parametrize(("source", "cr"), ray_clusters(), ids=source_id)
def test_kuberay_ray_start_params_are_ray_start_options(source: str, cr: dict[str, Any]) -> None:
    """KubeRay turns rayStartParams into `ray start --KEY=VALUE`: parse them with Ray's CLI."""
    for name, group in groups(cr["spec"]):
        args = ["--head"] if name == "head" else ["--address=stakeray-head-svc:6379"]
        for key, value in group.get("rayStartParams", {}).items():
            if key == "resources":  # '"{\"x\": 1}"' -> {"x": 1}, as KubeRay's shell sees it
                value = value[1:-1].replace("\\", "")
            args.append(f"--{key}={value}")
        params = ray_start_params(args, f"{source} {name} rayStartParams")
        assert params["metrics_export_port"] == PORTS["metrics"]
        if name == "head":
            assert params["dashboard_host"] == "0.0.0.0"


def test_kuberay_cluster_layout() -> None:
    """Head: ports, the ledger volume, cpu image; gpu group: GPU limit and toleration."""
    cluster = doc_of_kind(RAYCLUSTER, "RayCluster")
    spec = cluster["spec"]
    assert cluster["metadata"]["name"] == "stakeray"
    assert spec["rayVersion"] == ray.__version__
    head_pod = spec["headGroupSpec"]["template"]["spec"]
    head = head_pod["containers"][0]
    assert {p["name"]: p["containerPort"] for p in head["ports"]} == PORTS
    (pvc,) = [d for d in load_docs(RAYCLUSTER) if d["kind"] == "PersistentVolumeClaim"]
    claimed = {
        v["name"]
        for v in head_pod.get("volumes", [])
        if v.get("persistentVolumeClaim", {}).get("claimName") == pvc["metadata"]["name"]
    }
    assert pvc["metadata"]["name"] == "stakeray-ledger"
    assert {m["mountPath"] for m in head.get("volumeMounts", []) if m["name"] in claimed} == {
        "/data"
    }
    for group in spec["workerGroupSpecs"]:
        pod = group["template"]["spec"]
        assert not any("persistentVolumeClaim" in v for v in pod.get("volumes", [])), (
            f"worker group {group['groupName']} mounts the ledger: it belongs to the head only"
        )
        limits = pod["containers"][0].get("resources", {}).get("limits", {})
        tolerations = {t.get("key") for t in pod.get("tolerations", [])}
        if group["groupName"] == "gpu":
            assert int(limits.get("nvidia.com/gpu", 0)) >= 1
            assert "nvidia.com/gpu" in tolerations
        else:
            assert "nvidia.com/gpu" not in limits


def test_kuberay_token_authentication() -> None:
    """The cluster authenticates by token; the submitter gets the same token; no token in git."""
    cluster = doc_of_kind(RAYCLUSTER, "RayCluster")
    auth = cluster["spec"]["authOptions"]
    assert auth["mode"] == "token" and auth["secretName"] == TOKEN_SECRET
    job = doc_of_kind(RAYJOB, "RayJob")
    submitter = job["spec"]["submitterPodTemplate"]["spec"]["containers"][0]
    env = {e["name"]: e for e in submitter.get("env", [])}
    assert env["RAY_AUTH_MODE"].get("value") == "token"
    ref = env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": TOKEN_SECRET, "key": "auth_token"}
    for path in (RAYCLUSTER, RAYJOB):
        for doc in load_docs(path):
            assert doc["kind"] != "Secret", f"{rel(path)}: a token belongs in no file in git"


def test_kuberay_job_runs_on_the_network_cluster() -> None:
    job = doc_of_kind(RAYJOB, "RayJob")["spec"]
    cluster = doc_of_kind(RAYCLUSTER, "RayCluster")
    assert job["clusterSelector"] == {"ray.io/cluster": cluster["metadata"]["name"]}
    assert job.get("submissionMode", "K8sJobMode") == "K8sJobMode"
    assert job["backoffLimit"] == 0
    assert job["activeDeadlineSeconds"] > 0
    # The cluster holds the network: never ask KubeRay to shut it down. KubeRay also
    # refuses ttlSecondsAfterFinished > 0 without shutdownAfterJobFinishes.
    assert job.get("shutdownAfterJobFinishes", False) is False
    assert job.get("ttlSecondsAfterFinished", 0) == 0
    # KubeRay pastes the entrypoint unquoted into the submitter's shell script, so a
    # top-level `&&` or `;` would run in the submitter pod, not in the Ray job.
    top = shell_tokens(job["entrypoint"])
    assert not OPERATORS & set(top), f"wrap the entrypoint in bash -c: {job['entrypoint']}"
    inner = [c.argv[:2] for c in commands_in(job["entrypoint"], rel(RAYJOB))]
    assert ("stakeray", "submit") in inner and ("stakeray", "status") in inner


# --- Docker -------------------------------------------------------------------------------


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def runs(self) -> str:
        return "\n".join(args for keyword, args in self.instructions if keyword == "RUN")


def docker_stages() -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages (FROM image with ARGs resolved)."""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for keyword, rest in dockerfile_instructions(DOCKERFILE):
        if keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name.strip()] = default.strip().strip('"')
        elif keyword == "FROM":
            parts = rest.split()
            base = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), parts[0])
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else ""
            stages.append(Stage(name, base))
        elif stages:
            stages[-1].instructions.append((keyword, rest))
    return args, stages


def documented_tags() -> dict[str, str]:
    """``{target: tag}`` from the `docker build ... --target T -t TAG` lines of the header."""
    tags = {}
    for line in prompt_lines(DOCKERFILE):
        words = shell_tokens(line)
        if words[:2] == ["docker", "build"]:
            tags[words[words.index("--target") + 1]] = words[words.index("-t") + 1]
    return tags


def test_dockerfile_stages_match_the_installed_ray_and_python() -> None:
    args, stages = docker_stages()
    assert args.get("RAY_VERSION") == ray.__version__
    assert [s.name for s in stages] == ["cpu", "gpu"], "gpu must be last: the default target"
    python = f"py{sys.version_info.major}{sys.version_info.minor}"
    for stage in stages:
        assert stage.base == f"rayproject/ray:{ray.__version__}-{python}-{stage.name}"
        copies = [a.split()[-2:] for k, a in stage.instructions if k == "COPY"]
        assert [".", "/opt/stakeray"] in copies
        assert ("WORKDIR", "/opt/stakeray") in stage.instructions
        assert "stakeray --help" in stage.runs()
        assert re.search(r"mkdir -p /data\b", stage.runs()) and "chown" in stage.runs()
    cpu, gpu = stages
    assert '"/opt/stakeray[gpu]"' in gpu.runs() and "import cupy" in gpu.runs()
    assert '"/opt/stakeray"' in cpu.runs() and "[gpu]" not in cpu.runs()


def test_images_are_the_documented_tags() -> None:
    """The header's `docker build` tags carry the package version; manifests use them."""
    with (ROOT / "pyproject.toml").open("rb") as fh:
        version = tomllib.load(fh)["project"]["version"]
    tags = documented_tags()
    assert tags == {"cpu": f"stakeray:{version}-cpu", "gpu": f"stakeray:{version}-gpu"}
    cluster = doc_of_kind(RAYCLUSTER, "RayCluster")["spec"]
    for name, group in groups(cluster):
        image = group["template"]["spec"]["containers"][0]["image"]
        assert image == tags["gpu" if name == "gpu" else "cpu"], f"{name} group: {image}"
    job = doc_of_kind(RAYJOB, "RayJob")["spec"]
    for container in job["submitterPodTemplate"]["spec"]["containers"]:
        assert container["image"] in tags.values()


def test_dockerignore_keeps_the_context_small() -> None:
    entries = set((ROOT / ".dockerignore").read_text().split())
    for needed in (".git", "runs", "**/__pycache__", "**/*.egg-info", ".pytest_cache",
                   ".ruff_cache", ".hypothesis", ".benchmarks"):
        assert needed in entries, needed


# --- the commands in the files ------------------------------------------------------------


def test_commands_were_found() -> None:
    """Guard the extractor: the files' main commands must be among those checked below."""
    sources = {(c.source.split(" ")[0], c.argv[1]) for c in STAKERAY}
    for path in (*LAUNCHERS, RAYCLUSTER):
        for sub in ("up", "status", "down"):
            assert (rel(path), sub) in sources, f"no `stakeray {sub}` found in {rel(path)}"
    assert (rel(RAYJOB), "submit") in sources and (rel(RAYJOB), "status") in sources
    assert (rel(DOCKERFILE), "--help") in sources
    for path in LAUNCHERS:
        assert sum(c.source == rel(path) for c in RAY_START) == 2  # head and workers


@pytest.mark.parametrize("command", STAKERAY, ids=lambda c: c.id)
def test_stakeray_command_parses(command: Command) -> None:
    args = parse_stakeray(command.argv[1:], command.source)
    if command.source.startswith("deploy/"):
        # Paths into the repository on a node must exist in the repository.
        for word in command.argv[2:]:
            for prefix in REPO_PREFIXES:
                if word.startswith(prefix):
                    assert (ROOT / word[len(prefix) :]).exists(), f"{command.text}: {word}"
    if args is not None and getattr(args, "out", None):
        assert not args.out.startswith("~"), "stakeray does not expand ~ in --out"


@pytest.mark.parametrize("command", RAY_START, ids=lambda c: c.id)
def test_ray_start_command_parses(command: Command) -> None:
    ray_start_params(list(command.argv[2:]), command.source)


@pytest.mark.parametrize("command", RAY_JOB_SUBMIT, ids=lambda c: c.id)
def test_ray_job_submit_command_parses(command: Command) -> None:
    try:
        from ray.dashboard.modules.job.cli import submit
    except ImportError:  # needs ray[default]
        pytest.skip("ray job CLI not importable")
    params = click_parse(submit, "ray job submit", list(command.argv[3:]), command.source)
    assert params["entrypoint"], "no entrypoint after --"
    if params["working_dir"] and command.source.startswith("deploy/"):
        # Run from the repository root: the files the entrypoint names travel along.
        for word in params["entrypoint"]:
            if word.endswith(".yaml"):
                assert (ROOT / params["working_dir"] / word).exists(), f"{command.text}: {word}"
    if command.source.startswith("deploy/"):
        assert dict(command.env).get("RAY_AUTH_MODE") == "token", "the job CLI needs the token"

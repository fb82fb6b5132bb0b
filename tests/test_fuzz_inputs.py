"""Fuzzing the two front doors (issue 12): the config loader and the command line.

(a) ``load_config`` on random YAML documents built from the schema's own field
names with random values (huge, negative, nan/inf, strings, bools, lists,
nulls), duplicate keys and bytes that are not UTF-8: it loads, or raises
``ConfigError`` with one line; never another exception. A config that loads
is usable: its delegators and tasks can be drawn.

(b) ``cluster.cli.main`` on random argv made from the real subcommands and
options, for commands that need no network (``run --local`` with its Ray run
stubbed, ``verify``/``report`` on missing or junk directories, ``keys``,
``tx``, ``submit``/``status``/``down`` without a network, ``simulate`` with bad
files, ``up`` with a config that fails or a ``--resume`` with nothing to
resume): exit 0 or 2, exactly one ``error:`` line on an exit 2 that is not an
argparse usage error, and never a traceback.
"""

from __future__ import annotations

import contextlib
import io
import math
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from cluster.cli import app
from cluster.cli import main as cli_main
from cluster.config.schema import ConfigError, RunConfig, load_config
from cluster.config.workload import WorkloadSpec, generate_tasks
from cluster.engine.network import delegator_stakes
from cluster.runtime.runner import RunError

# --- (a) the config loader ------------------------------------------------------------------


def field_tree(model: type[BaseModel]) -> dict[str, Any]:
    """The schema's field names as a tree: a sub-model's fields nest under its name."""
    tree: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        sub: dict[str, Any] = {}
        for candidate in (info.annotation, *getattr(info.annotation, "__args__", ())):
            for inner in (candidate, *getattr(candidate, "__args__", ())):
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    sub = field_tree(inner)
        tree[name] = sub
    return tree


TREE = field_tree(RunConfig)


def all_names(tree: dict[str, Any]) -> set[str]:
    return {name for key, sub in tree.items() for name in (key, *all_names(sub))}


NAMES = sorted(all_names(TREE) | {"unbonding_period", "slash_fraction"})

VALID = {
    "seed": 1,
    "network": {
        "operators": [{"name": "op", "stake": 10}],
        "delegators": {"count": 3, "stake_min": 1, "stake_max": 5},
        "coprocessors": [{"name": "cop", "collateral": 5, "capacity": 2}],
    },
    "workload": {"count": 5, "mix": [{"kind": "sort", "size": 64}]},
}

scalars = st.one_of(
    st.integers(-(10**6), 10**6),
    st.sampled_from([0, 1, -1, 2**63, 10**12, 10**40, -(10**30)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e-9, 1e300, 0.5]),
    st.booleans(),
    st.none(),
    st.text(max_size=12),
    st.sampled_from(["-0.5", "1.-5", "1e5", "0x10", "sort", "matmul", "nan", "", "op", "Ü"]),
    st.sampled_from(NAMES),
)


def values(depth: int = 2) -> st.SearchStrategy[Any]:
    if depth == 0:
        return scalars
    inner = values(depth - 1)
    return st.one_of(
        scalars,
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(NAMES), inner, max_size=3),
    )


def subtree(tree: dict[str, Any], depth: int = 3) -> st.SearchStrategy[Any]:
    """A mapping of some of ``tree``'s names; sub-model names get a mapping, a list or junk."""
    if depth == 0 or not tree:
        return values(1)
    children = {name: (subtree(sub, depth - 1) if sub else values(1)) for name, sub in tree.items()}
    as_dict = st.fixed_dictionaries({}, optional=children)
    return st.one_of(as_dict, st.lists(as_dict, min_size=0, max_size=3), scalars)


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    """The valid config with a few random paths replaced by random values."""
    doc = yaml.safe_load(yaml.safe_dump(VALID))
    for _ in range(draw(st.integers(1, 3))):
        node: Any = doc
        tree: dict[str, Any] = TREE
        while True:
            if isinstance(node, list) and node:
                node = node[draw(st.integers(0, len(node) - 1))]
                continue
            if not isinstance(node, dict):
                break
            name = draw(st.sampled_from(sorted({*tree, *node} or {"seed"})))
            if draw(st.booleans()) or not isinstance(node.get(name), dict | list):
                node[name] = draw(values(2))
                break
            node, tree = node[name], tree.get(name) or {}
    return doc


def render(doc: Any) -> str:
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


@st.composite
def documents(draw: st.DrawFn) -> bytes:
    doc = draw(
        st.one_of(
            mutated(),
            st.fixed_dictionaries(
                {}, optional={k: subtree(v) if v else values(1) for k, v in TREE.items()}
            ),
        )
    )
    text = render(doc).encode()
    damage = draw(st.sampled_from(["none", "none", "duplicate", "bytes", "truncate", "alias"]))
    if damage == "duplicate":  # repeat one line: a duplicate key at some level (or junk)
        lines = text.splitlines(keepends=True)
        i = draw(st.integers(0, max(len(lines) - 1, 0)))
        text = b"".join([*lines[: i + 1], *lines[i : i + 1], *lines[i + 1 :]])
    elif damage == "bytes":
        at = draw(st.integers(0, len(text)))
        text = (
            text[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\x00", b"\xfe\xff"])) + text[at:]
        )
    elif damage == "truncate":
        text = text[: draw(st.integers(0, len(text)))]
    elif damage == "alias":
        text = b"base: &a [1, 2, 3]\n" + text + b"\nextra: *a\n"
    return text


def check_loads_or_one_line(path: Path) -> None:
    try:
        config = load_config(path)
    except ConfigError as exc:
        message = str(exc)
        assert message and "\n" not in message, message
        return
    # A config that loads is usable: drawing its delegators and tasks never fails.
    if config.network.delegators.count <= 2000:
        delegator_stakes(config)
    workload = config.workload
    if workload is not None and workload.count is not None and workload.count <= 50:
        small = WorkloadSpec.model_validate(
            {**workload.model_dump(), "mix": [{"kind": "sort", "size": 8}]}
        )
        assert len(generate_tasks(small)) == workload.count


@settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(text=documents())
def test_config_loader_loads_or_refuses_in_one_line(text: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "net.yaml"
        path.write_bytes(text)
        check_loads_or_one_line(path)


@pytest.mark.parametrize(
    "text",
    [
        b"a: " + b"9" * 5000 + b"\n",
        b"seed: 2001-13-45\n",
        b"seed: !!float abc\n",
        b"[" * 5000,
        b"- " * 3000 + b"x\n",
        b"a: &x [*x]\nnetwork: *x\n",
        b"\n".join(
            b"l%d: &l%d [" % (i, i) + b", ".join([b"*l%d" % (i - 1)] * 9) + b"]"
            for i in range(1, 12)
        ).replace(b"*l0", b"x"),
        b"network: !!binary AAAA\n",
        b"? [1, 2]\n: 3\n",
        b"\xef\xbb\xbfseed: 1\n",
        b"seed: 1\r\nseed: 2\r\n",
    ],
)
def test_known_nasty_documents(tmp_path: Path, text: bytes) -> None:
    path = tmp_path / "net.yaml"
    path.write_bytes(text)
    check_loads_or_one_line(path)


# --- (b) the command line ----------------------------------------------------------------

CONFIG = """\
network:
  operators: [{name: op, stake: 10}]
workload:
  count: 3
  mix: [{kind: sort, size: 64}]
"""
EXPERIMENT = "name: x\nrounds: 1\noperators: {count: 1}\ncoprocessors: {count: 1}\n"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Files the fuzzed commands point at: good, bad and junk."""
    root = tmp_path_factory.mktemp("fuzz")
    (root / "good.yaml").write_text(CONFIG)
    (root / "bad.yaml").write_text("network: {operators: []}\n")
    (root / "latin1.yaml").write_bytes(b"seed: 1\nname: \xe9\n")
    (root / "dup.yaml").write_text("seed: 1\nseed: 2\n")
    (root / "work.yaml").write_text("count: 2\nmix: [{kind: sort, size: 8}]\n")
    (root / "exp.yaml").write_text(EXPERIMENT)
    (root / "a-file").write_text("not a directory\n")
    junk = root / "junk-run"
    (junk / "ledger").mkdir(parents=True)
    (junk / "ledger" / "events.log").write_bytes(b"\x00\x01junk" * 10)
    (junk / "summary.json").write_text("{not json")
    (root / "empty").mkdir()
    keystore = root / "keys"
    assert cli_main(["keys", "new", "alice", "--keystore", str(keystore)]) == 0
    return root


def paths(root: Path) -> st.SearchStrategy[str]:
    names = [
        "good.yaml",
        "bad.yaml",
        "latin1.yaml",
        "dup.yaml",
        "work.yaml",
        "exp.yaml",
        "a-file",
        "junk-run",
        "empty",
        "missing",
        "missing/deeper",
        "",
    ]
    return st.sampled_from([str(root / n) if n else "" for n in names])


NUMBERS = st.sampled_from(
    [
        "0",
        "-5",
        "1",
        "3",
        "10000000",
        "10000001",
        "1e3",
        "x",
        "",
        "-0",
        "99999999999999999999999999",
        " 2",
        "1_0",
        "٣",
    ]
)
JUNK = st.one_of(
    NUMBERS,
    st.text(max_size=8),
    st.sampled_from(["--", "-", "--help=x", "=", "amount=-0.5", "lock_id=true"]),
)


@st.composite
def argvs(draw: st.DrawFn, root: Path) -> list[str]:
    path = paths(root)
    out = st.sampled_from(
        ["OUT", "OUT/sub", str(root / "a-file"), str(root / "empty"), str(root / "junk-run")]
    )
    command = draw(
        st.sampled_from(
            [
                "run",
                "verify",
                "report",
                "keys",
                "tx",
                "submit",
                "status",
                "down",
                "simulate",
                "up",
                "bogus",
            ]
        )
    )
    argv = [command]
    options: list[list[str]] = []
    if command == "run":
        argv += [draw(path), "--local", "--quiet", "--no-pace"]
        options = [
            ["--out", draw(out)],
            ["--count", draw(NUMBERS)],
            ["--overwrite"],
            ["--workload", draw(path)],
            ["--chaos", draw(JUNK)],
        ]
    elif command in ("verify", "report"):
        argv += [draw(path)]
    elif command == "keys":
        argv += [draw(st.sampled_from(["new", "list", "delete"]))]
        options = [
            [draw(st.sampled_from(["bob", "alice", "a/b", "", "..", "x" * 80]))],
            ["--keystore", str(root / "keys")],
        ]
    elif command == "tx":
        argv += [draw(st.sampled_from(["bond", "unbond", "rebond", "vote", "nope"]))]
        argv += draw(
            st.lists(
                st.sampled_from(
                    [
                        "amount=1",
                        "amount=-0.5",
                        "amount=1.-5",
                        "amount=x",
                        "lock_id=1",
                        "lock_id=-1",
                        "lock_id=true",
                        "operator=op",
                        "bogus=1",
                        "proposal_id=0",
                        "choice=for",
                        "=1",
                    ]
                ),
                max_size=3,
            )
        )
        options = [
            ["--key", draw(st.sampled_from(["alice", "bob", ""]))],
            ["--keystore", str(root / "keys")],
            ["--nonce", draw(NUMBERS)],
            ["--dir", draw(path)],
        ]
    elif command in ("submit", "status", "down"):
        if command == "submit":
            argv += [draw(path)]
            options = [["--count", draw(NUMBERS)], ["--no-pace"], ["--quiet"]]
        options += [["--dir", draw(path)]]
    elif command == "simulate":
        argv += [draw(path)]
        options = [
            ["--out", draw(out)],
            ["--rounds", draw(NUMBERS)],
            ["--resume"],
            ["--overwrite"],
            ["--quiet"],
        ]
    elif command == "up":
        argv += [
            draw(
                st.sampled_from(
                    [str(root / n) for n in ("bad.yaml", "latin1.yaml", "dup.yaml", "missing")]
                )
            )
        ]
        options = [
            ["--out", draw(out)],
            ["--port", draw(NUMBERS)],
            ["--num-cpus", draw(NUMBERS)],
            ["--overwrite"],
        ]
        if draw(st.booleans()):
            argv = ["up", "--resume"]
    for option in options:
        if draw(st.booleans()):
            argv += option
    if draw(st.integers(0, 9)) == 0:
        argv.insert(draw(st.integers(1, len(argv))), draw(JUNK))
    return argv


@contextlib.contextmanager
def no_ray(monkeypatch: pytest.MonkeyPatch, root: Path) -> Iterator[list[Any]]:
    """No Ray run and no Ray address: ``run`` stops where Ray would start."""
    calls: list[Any] = []

    def stub(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        raise RunError("stubbed: the fuzz does not run the cluster")

    monkeypatch.setattr(app, "run_cluster", stub)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("STAKERAY_KEYSTORE", str(root / "default-keys"))
    yield calls


def run_cli(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = cli_main(argv)
        except SystemExit as exc:  # argparse: usage errors (2) and --help (0)
            code = exc.code if isinstance(exc.code, int) else 2
            return code, "usage:" + err.getvalue()
    return code, err.getvalue()


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_cli_exits_0_or_2_with_one_error_line(
    world: Path, monkeypatch: pytest.MonkeyPatch, data: st.DataObject
) -> None:
    argv = data.draw(argvs(world))
    with tempfile.TemporaryDirectory() as tmp, no_ray(monkeypatch, world):
        argv = [a.replace("OUT", str(Path(tmp) / "out")) for a in argv]
        code, stderr = run_cli(argv)
    assert "Traceback" not in stderr, (argv, stderr)
    assert code in (0, 2), (argv, code, stderr)
    if code == 2 and not stderr.startswith("usage:"):
        lines = stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (argv, stderr)


def test_a_junk_network_record_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "cluster.json").write_text("[1, 2")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert cli_main(["status", "--dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: ")


@pytest.mark.parametrize(
    "extra",
    ["delegators: {count: 2, stake: [-10, -5]}\n", "operators: {count: 1, stake: [1, .inf]}\n"],
)
def test_an_experiment_with_bad_ranges_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: str
) -> None:
    text = "name: x\nrounds: 1\ncoprocessors: {count: 1}\n" + extra
    if "operators" not in extra:
        text += "operators: {count: 1}\n"
    (tmp_path / "exp.yaml").write_text(text)
    argv = ["simulate", str(tmp_path / "exp.yaml"), "--out", str(tmp_path / "out"), "--quiet"]
    assert cli_main(argv) == 2
    assert capsys.readouterr().err.startswith("error: ")

"""The ``stakeray`` command line: run, up, submit, status, tx, down, verify, report, keys."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cluster.cli.keys import KeystoreError, create_key, list_keys, load_key
from cluster.cli.tables import coprocessor_table, format_tokens, network_line, operator_table
from cluster.config.schema import ConfigError, RunConfig, load_config, load_workload
from cluster.engine.coordinator import CONFIG_FILE
from cluster.engine.gateway import GatewayError
from cluster.runtime.actors import COORDINATOR_NAME, NAMESPACE, Deployment, deploy, find_deployment
from cluster.runtime.chaos import ChaosError, ChaosPlan
from cluster.runtime.head import HEAD_LOG, HeadError, start_head, stop_head
from cluster.runtime.nodes import on_node
from cluster.runtime.rundir import (
    RUN_FILES,
    STATE_FILE,
    RunResult,
    finish_network,
    read_state,
    record_submission,
    write_state,
)
from cluster.runtime.runner import RunError, run_cluster
from protocol import ProtocolError
from protocol.ledger import LOG_NAME, Ledger, LedgerError
from protocol.units import tokens

# --- run and verify ---------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    config = load_config(args.config, args.workload)
    if config.workload is None:
        raise ConfigError(f"{args.config}: workload: missing; add it or pass --workload FILE")
    if args.count is not None:
        workload = config.workload.with_count(args.count)
        config = config.model_copy(update={"workload": workload})
    out = Path(args.out)
    prepare_out(out, args.overwrite)
    result = run_cluster(
        config,
        out,
        address=args.address,
        chaos=ChaosPlan.parse(args.chaos),
        progress=not args.quiet,
        local=args.local,
        paced=not args.no_pace,
        report=True,
    )
    print_result(result)
    print(f"report -> {out / 'report.html'}")
    return 0 if result.summary["conservation_ok"] else 1


def prepare_out(out: Path, overwrite: bool) -> None:
    if (out / "ledger" / "events.log").exists():
        if not overwrite:
            raise RunError(
                f"--out {out}: already holds a run; choose another directory or pass --overwrite"
            )
        shutil.rmtree(out / "ledger", ignore_errors=True)
        shutil.rmtree(out / "figures", ignore_errors=True)  # the old report's
        for name in (*RUN_FILES, STATE_FILE, CONFIG_FILE, HEAD_LOG, "report.html"):
            (out / name).unlink(missing_ok=True)


def print_result(result: RunResult) -> None:
    s = result.summary
    print(operator_table(result.status, result.rewards, result.fees))
    print()
    print(coprocessor_table(result.status))
    print()
    print(
        f"tasks {s['tasks_submitted']}: settled {s['tasks_settled']}, refunded"
        f" {s['tasks_refunded']}, failed {s['tasks_failed']}  "
        f"{s['throughput_tasks_per_s']:.1f} tasks/s  rounds {s['rounds']}  "
        f"minted {format_tokens(int(s['minted']))}  burned {format_tokens(int(s['burned']))}"
    )
    if s.get("chaos"):
        print("chaos: " + "; ".join(f"{t} s {name}" for t, name, _ in s["chaos"]))
    print(
        f"conservation {'ok' if s['conservation_ok'] else 'FAILED'}  "
        f"state {s['state_hash'][:16]}  -> {result.directory}"
    )


def cmd_verify(args: argparse.Namespace) -> int:
    """Replay a run's log from genesis, check every invariant, compare with the summary."""
    directory = Path(args.dir)
    protocol = Ledger.replay(directory / "ledger")
    protocol.check_invariants()
    stake_dust, fee_dust = protocol.unclaimable()
    digest = protocol.state_hash()
    print(f"state {digest}")
    outcomes = Counter(done[0] for done in protocol.state.finished.values())
    print(
        f"rounds {protocol.round}  invariants ok  tasks "
        + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
        + f"  open {len(protocol.state.tasks)}  unclaimable dust {stake_dust}/{fee_dust}"
    )
    summary_path = directory / "summary.json"
    if not summary_path.exists():
        return 0
    summary = json.loads(summary_path.read_text())
    if summary.get("state_hash") != digest:
        print(
            f"error: state hash differs from summary.json ({summary.get('state_hash')})",
            file=sys.stderr,
        )
        return 1
    for key in ("settled", "refunded", "failed"):
        recorded = summary.get(f"tasks_{key}")
        if recorded is not None and recorded != outcomes.get(key, 0):
            print(
                f"error: summary.json tasks_{key} {recorded} != ledger {outcomes.get(key, 0)}",
                file=sys.stderr,
            )
            return 1
    print("matches summary.json")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write a run directory's report.html and figures."""
    from cluster.analysis.report import write_report

    print(f"report -> {write_report(Path(args.dir))}")
    return 0


# --- a long-lived network: up, submit, status, tx, down ------------------------------------


@dataclass
class Network:
    """A network that is up: its config, actors, run directory and the directory's node."""

    address: str
    config: RunConfig
    deployment: Deployment
    directory: Path
    node_id: str | None
    local_state: dict[str, Any]


@contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """Hold what this process (C++ included) writes to stderr; yield a list that gets it."""
    import tempfile

    held: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield held
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            held.append(sink.read().decode(errors="replace"))


@contextmanager
def joined(address: str) -> Iterator[None]:
    """Join the Ray cluster at ``address`` for one command (reuse a connection if present)."""
    import ray

    from cluster.runtime.runner import quiet_ray_env

    if ray.is_initialized():
        yield
        return
    quiet_ray_env()
    failure = ""
    # Ray's C++ client prints its retries to stderr; they are shown only if the join works,
    # so that a refusal is the one line below.
    with captured_stderr() as held:
        try:
            ray.init(
                address=address,
                logging_level=logging.WARNING,
                log_to_driver=False,
                namespace=NAMESPACE,
            )
        except (ConnectionError, RuntimeError) as exc:
            failure = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
    if failure:
        if "Unauthenticated" in held[0]:
            failure = "the cluster refused this client's token"
        raise RunError(
            f"--address {address}: cannot join the Ray cluster ({failure}); check the address"
            " and the token (RAY_AUTH_MODE=token with RAY_AUTH_TOKEN or ~/.ray/auth_token)"
        )
    sys.stderr.write(held[0])
    try:
        yield
    finally:
        ray.shutdown()


@contextmanager
def connected(args: argparse.Namespace) -> Iterator[Network]:
    """Find the network by ``--address`` (else ``--dir``'s record, else ``RAY_ADDRESS``)."""
    import ray

    local_state = read_state(Path(args.dir)) if args.dir else {}
    address = args.address or local_state.get("address") or os.environ.get("RAY_ADDRESS")
    if local_state.get("head_pid") and address == local_state["address"]:
        # Ray offers this user's token only to a cluster it finds itself (address "auto"),
        # never to an explicit address; this one is the head `up` started here.
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )

        quiet = logging.getLogger("ray._private.authentication.authentication_token_setup")
        level, quiet.level = quiet.level, logging.ERROR  # its "enabled" notice is not news here
        try:
            maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
        finally:
            quiet.setLevel(level)
    if not address:
        if args.dir:
            raise RunError(f"--dir {args.dir}: no network is up here (run `stakeray up`)")
        raise RunError("give --address ADDR or --dir DIR (or set RAY_ADDRESS) to find the network")
    with joined(address):
        try:
            coordinator = ray.get_actor(COORDINATOR_NAME)
        except ValueError:
            raise RunError(f"no stakeray network is up on {address} (run `stakeray up`)") from None
        info = ray.get(coordinator.describe.remote())
        config = RunConfig.model_validate_json(info["config"])
        yield Network(
            address,
            config,
            find_deployment(config),
            Path(info["directory"]),
            info["node_id"],
            local_state,
        )


def cmd_up(args: argparse.Namespace) -> int:
    import ray

    from cluster.runtime.runner import check_resources, quiet_ray_env

    out = Path(args.out).resolve()
    if args.resume:
        if not (out / "ledger" / LOG_NAME).exists():
            raise RunError(f"--resume: {out} holds no ledger to resume")
        if args.config is not None:
            raise RunError(f"--resume: the network's config is {out / CONFIG_FILE}; drop CONFIG")
        config = load_config(out / CONFIG_FILE, args.workload)
    else:
        if args.config is None:
            raise RunError("up: give the network CONFIG (or --resume a run directory)")
        config = load_config(args.config, args.workload)
        prepare_out(out, args.overwrite)
    out.mkdir(parents=True, exist_ok=True)
    quiet_ray_env()
    address = args.address or os.environ.get("RAY_ADDRESS")
    head_pid = None
    if not address:
        cpus = args.num_cpus or os.cpu_count() or 2
        head_pid = start_head(args.port, cpus, out / HEAD_LOG)
        address = "auto"
    try:
        with joined(address):
            try:
                ray.get_actor(COORDINATOR_NAME)
            except ValueError:
                pass
            else:
                raise RunError(
                    "a stakeray network is already up on this cluster; `stakeray down` it"
                )
            check_resources(config, ray.cluster_resources())
            deployment = deploy(config, out, detached=True)
            info = ray.get(deployment.coordinator.describe.remote())
            round_ = ray.get(deployment.coordinator.ping.remote())
            gcs = ray.get_runtime_context().gcs_address
            state = {"address": gcs, "head_pid": head_pid}
            on_node(info["node_id"], write_state, Path(info["directory"]), state)
    except BaseException:
        if head_pid is not None:  # a head started for a network that did not come up
            stop_head(head_pid)
        raise
    print(
        f"network {'resumed' if args.resume else 'up'} on {gcs}: round {round_}, "
        f"{len(config.network.operators)} operators, {len(config.network.coprocessors)}"
        f" coprocessors -> {info['directory']}"
    )
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    from cluster.config.workload import generate_tasks
    from cluster.engine.transport import RayTransport
    from cluster.runtime.runner import feed

    workload = load_workload(args.workload)
    if args.count is not None:
        workload = workload.with_count(args.count)
    with connected(args) as net:
        records, elapsed = feed(
            net.deployment,
            RayTransport(),
            net.config,
            generate_tasks(workload),
            deadline_rounds=workload.deadline_rounds,
            paced=not args.no_pace,
            progress=not args.quiet,
        )
        on_node(net.node_id, record_submission, net.directory, records, elapsed)
    counts = Counter(r.outcome for r in records)
    print(f"submitted {len(records)} tasks: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    import ray

    with connected(args) as net:
        status = ray.get(net.deployment.coordinator.status.remote())
    if args.json:
        status = {"address": net.address, "directory": str(net.directory), **status}
        print(json.dumps(status, indent=2, default=str))
        return 0
    print(network_line(status))
    print()
    print(operator_table(status))
    print()
    print(coprocessor_table(status))
    return 0


TX_KINDS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # CLI name: (protocol kind, actor field, fields in order)
    "transfer": ("transfer", "sender", ("to", "amount")),
    "bond": ("bond", "delegator", ("operator", "amount")),
    "unbond": ("unbond", "delegator", ("amount",)),
    "rebond": ("rebond", "delegator", ("lock_id",)),
    "withdraw": ("withdraw_stake", "delegator", ("lock_id",)),
    "withdraw-fees": ("withdraw_fees", "delegator", ("amount",)),
    "claim": ("claim_earnings", "delegator", ()),
    "register": ("register_operator", "operator", ("reward_cut", "fee_share")),
    "commission": ("set_commission", "operator", ("reward_cut", "fee_share")),
    "vote": ("vote", "voter", ("proposal_id", "choice")),
}
TOKEN_FIELDS = {"amount"}
INT_FIELDS = {"lock_id", "reward_cut", "fee_share", "proposal_id"}


def build_tx(kind: str, actor: str, values: list[str]) -> dict[str, Any]:
    """Build the plain transaction for ``stakeray tx KIND FIELD=VALUE ...``."""
    protocol_kind, actor_field, fields = TX_KINDS[kind]
    plain: dict[str, Any] = {"kind": protocol_kind, actor_field: actor}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or name not in fields:
            raise RunError(
                f"tx {kind}: {item!r}: expected one of {', '.join(fields) or '(none)'}=VALUE"
            )
        try:
            if name in TOKEN_FIELDS:
                plain[name] = tokens(value)
            elif name in INT_FIELDS:
                plain[name] = int(value)
            else:
                plain[name] = value
        except (ValueError, ArithmeticError):
            raise RunError(f"tx {kind}: {name}: not a number: {value!r}") from None
    missing = [f for f in fields if f not in plain and kind != "commission"]
    if missing:
        raise RunError(f"tx {kind}: missing {', '.join(f'{m}=' for m in missing)}")
    return plain


def cmd_tx(args: argparse.Namespace) -> int:
    import ray

    from cluster.engine.signing import sign_tx
    from protocol.transactions import parse_tx

    key = load_key(args.key, args.keystore)
    actor = bytes(key.verify_key).hex()
    plain = build_tx(args.kind, actor, args.fields)
    try:
        transaction = parse_tx(plain)
    except ValueError as exc:
        first = str(exc).splitlines()
        raise RunError(f"tx {args.kind}: {first[1] if len(first) > 1 else first[0]}") from None
    with connected(args) as net:
        coordinator = net.deployment.coordinator
        nonce = args.nonce if args.nonce is not None else ray.get(coordinator.nonce.remote(actor))
        signed = sign_tx(key, nonce, transaction)
        ok, message = ray.get(coordinator.submit_signed.remote(signed))
    if not ok:
        print(f"error: refused: {message}", file=sys.stderr)
        return 1
    print(
        f"accepted {args.kind} from {actor[:12]}... nonce {nonce}"
        + (f": {message}" if message else "")
    )
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    import ray

    with connected(args) as net:
        summary = on_node(net.node_id, finish_network, net.directory, net.deployment)
        for handle in net.deployment.handles():
            ray.kill(handle, no_restart=True)
    if net.local_state.get("head_pid"):
        stop_head(int(net.local_state["head_pid"]))
    print(
        f"network down: rounds {summary['rounds']}  conservation "
        f"{'ok' if summary['conservation_ok'] else 'FAILED'}  state {summary['state_hash'][:16]}"
        f"  -> {net.directory}"
    )
    return 0 if summary["conservation_ok"] else 1


def cmd_simulate(args: argparse.Namespace) -> int:
    """Run an experiment's sweep with drawn outcomes; print one line per point."""
    from cluster.analysis.experiment_report import write_experiment_report
    from cluster.analysis.simulate import load_experiment, run_experiment

    config = load_experiment(args.experiment)
    if args.rounds is not None:
        config = config.model_copy(update={"rounds": args.rounds})
    out = Path(args.out)
    if (out / "summary.json").exists() and not args.resume:
        if not args.overwrite:
            raise RunError(
                f"--out {out}: already holds results; pass --resume to continue"
                " or --overwrite to start again"
            )
        shutil.rmtree(out)
    summary = run_experiment(config, out, progress=not args.quiet)
    ((name, _),) = config.sweep.items()
    header = ("seed", 5), ("active", 7), ("cum. reward", 14), ("corr(rep,rew)", 14), ("gini", 7)
    print(f"{name:>14} " + " ".join(f"{h:>{w}}" for h, w in header))
    for row in summary["sweep"]:
        corr = row["reputation_reward_corr"]
        print(
            f"{row[name]:>14} {row['seed']:>5} {row['active_operators_final']:>7}"
            f" {row['cumulative_reward_final']:>14,.1f}"
            f" {'-' if corr is None else f'{corr:.3f}':>14} {row['gini_rewards']:>7.3f}"
        )
    print(f"{len(summary['sweep'])} points in {summary['elapsed_s']:.1f} s -> {out}")
    print(f"report: {write_experiment_report(out)}")
    return 0


# --- keys -----------------------------------------------------------------------------------


def cmd_keys(args: argparse.Namespace) -> int:
    if args.action == "new":
        if not args.name:
            raise KeystoreError("keys new: give a NAME")
        print(create_key(args.name, args.keystore))
    else:
        for name, address in list_keys(args.keystore).items():
            print(f"{name}  {address}")
    return 0


# --- the parser -----------------------------------------------------------------------------


def add_locator(command: argparse.ArgumentParser) -> None:
    """Add the options that find a network that is up: its Ray address or its directory."""
    command.add_argument("--address", help="Ray cluster the network is on (default: RAY_ADDRESS)")
    command.add_argument("--dir", help="run directory given to `up` on this machine")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stakeray", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a network and workload on Ray, write a run directory")
    run.add_argument("config", help="YAML with the network (and the workload)")
    run.add_argument("--workload", help="separate workload YAML")
    run.add_argument("--out", required=True, help="run directory to create")
    run.add_argument("--address", help="Ray cluster to join (default: RAY_ADDRESS, else local)")
    run.add_argument("--chaos", help="kill-coordinator=N,kill-coprocessor=N,kill-node=N")
    run.add_argument("--count", type=int, help="override the workload's task count")
    run.add_argument("--no-pace", action="store_true", help="submit at once, ignore arrival times")
    run.add_argument("--local", action="store_true", help="run in this process without Ray")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    run.set_defaults(func=cmd_run)

    verify = sub.add_parser("verify", help="replay a run's log and check it")
    verify.add_argument("dir", help="run directory")
    verify.set_defaults(func=cmd_verify)

    report = sub.add_parser("report", help="write a run directory's report.html and figures")
    report.add_argument("dir", help="run directory")
    report.set_defaults(func=cmd_report)

    up = sub.add_parser("up", help="start (or join) Ray and deploy a long-lived network")
    up.add_argument("config", nargs="?", help="YAML with the network (with --resume: optional)")
    up.add_argument("--workload", help="workload YAML whose deadline the network uses")
    up.add_argument("--out", required=True, help="run directory of this network")
    up.add_argument(
        "--address", help="Ray cluster to join (default: start a head here, token auth on)"
    )
    up.add_argument("--port", type=int, default=6379, help="port of a local head (default 6379)")
    up.add_argument("--num-cpus", type=int, help="CPUs of a local head")
    up.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    up.add_argument(
        "--resume", action="store_true", help="redeploy onto --out's ledger (after losing the head)"
    )
    up.set_defaults(func=cmd_up)

    submit = sub.add_parser("submit", help="submit a workload to a network that is up")
    submit.add_argument("workload", help="workload YAML")
    add_locator(submit)
    submit.add_argument("--count", type=int, help="override the workload's task count")
    submit.add_argument("--no-pace", action="store_true", help="submit at once")
    submit.add_argument("--quiet", action="store_true", help="no progress bar")
    submit.set_defaults(func=cmd_submit)

    status = sub.add_parser("status", help="operators and coprocessors of a network that is up")
    add_locator(status)
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=cmd_status)

    tx = sub.add_parser("tx", help="sign and send a protocol transaction from the keystore")
    tx.add_argument("kind", choices=sorted(TX_KINDS), help="transaction")
    tx.add_argument("fields", nargs="*", help="FIELD=VALUE (amounts in tokens)")
    tx.add_argument("--key", required=True, help="key name or address in the keystore")
    add_locator(tx)
    tx.add_argument(
        "--keystore", help="keystore directory (default: STAKERAY_KEYSTORE or ~/.stakeray/keys)"
    )
    tx.add_argument("--nonce", type=int, help="nonce to sign with (default: the account's next)")
    tx.set_defaults(func=cmd_tx)

    down = sub.add_parser(
        "down", help="finish a network: summary, report, stop its actors (and the head up started)"
    )
    add_locator(down)
    down.set_defaults(func=cmd_down)

    simulate = sub.add_parser("simulate", help="run an experiment sweep with drawn outcomes")
    simulate.add_argument("experiment", help="experiment YAML (e.g. examples/paper.yaml)")
    simulate.add_argument("--out", required=True, help="output directory")
    simulate.add_argument("--rounds", type=int, help="override the number of rounds")
    simulate.add_argument("--resume", action="store_true", help="keep finished points in --out")
    simulate.add_argument("--overwrite", action="store_true", help="start --out afresh")
    simulate.add_argument("--quiet", action="store_true", help="no progress line")
    simulate.set_defaults(func=cmd_simulate)

    keys = sub.add_parser("keys", help="manage the local Ed25519 keystore")
    keys.add_argument("action", choices=["new", "list"])
    keys.add_argument("name", nargs="?", help="key name (for new)")
    keys.add_argument("--keystore", help="keystore directory")
    keys.set_defaults(func=cmd_keys)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (
        ConfigError,
        LedgerError,
        ProtocolError,
        RunError,
        ChaosError,
        GatewayError,
        KeystoreError,
        HeadError,
    ) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


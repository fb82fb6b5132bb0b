"""The ``stakeray`` command: run, up, submit, status, tx, down, verify, repair, report, keys."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import NoneType, UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import ValidationError

from cluster.cli.keys import KeystoreError, create_key, list_keys, load_key
from cluster.cli.tables import (
    coprocessor_table,
    format_tokens,
    network_line,
    operator_table,
    sweep_table,
)
from cluster.config.schema import ConfigError, first_error, load_config, load_workload, read_yaml
from cluster.config.workload import MAX_TASKS
from cluster.engine.coordinator import CONFIG_FILE
from cluster.engine.status import fairness_lines
from cluster.runtime.chaos import ChaosPlan
from cluster.runtime.connect import bring_up, connected, stop_local_head, submit, take_down
from cluster.runtime.head import HEAD_LOG
from cluster.runtime.rundir import RUN_FILES, STATE_FILE, SUMMARY_OUTCOMES, RunResult
from cluster.runtime.runner import RunError, run_cluster
from protocol.errors import StakerayError
from protocol.eventlog import CorruptLog, CorruptSnapshot
from protocol.ledger import LOG_NAME, apply_repair, check_ledger, plan_repair
from protocol.transactions import TX_KINDS, Tx
from protocol.units import tokens

# --- run and verify ---------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    config = load_config(args.config, args.workload)
    if config.workload is None:
        raise ConfigError(f"{args.config}: workload: missing; add it or pass --workload FILE")
    if args.count is not None:
        workload = config.workload.with_count(args.count)
        config = config.model_copy(update={"workload": workload})
    chaos = ChaosPlan.parse(args.chaos)  # every check before --out is touched
    out = Path(args.out)
    prepare_out(out, args.overwrite)
    result = run_cluster(
        config,
        out,
        address=args.address,
        chaos=chaos,
        progress=not args.quiet,
        local=args.local,
        paced=not args.no_pace,
        report=True,
    )
    print_result(result)
    print(f"report -> {out / 'report.html'}")
    return 0 if result.summary["conservation_ok"] else 1


RUN_DIRS = ("ledger", "figures")
RUN_NAMES = (*RUN_FILES, STATE_FILE, CONFIG_FILE, HEAD_LOG, "report.html")
"""What a run writes in its directory: ``--overwrite`` removes these and nothing else."""
EXPERIMENT_DIRS = ("points", "figures")
EXPERIMENT_NAMES = ("summary.json", "rewards.csv", "rounds.csv", "points.csv", "report.html")
"""What ``stakeray simulate`` writes in its ``--out``."""


def is_own(entry: Path, dirs: tuple[str, ...], files: tuple[str, ...]) -> bool:
    """Return whether ``entry`` is one a run writes (a symlink never is: it leads elsewhere)."""
    if entry.is_symlink():
        return False
    if entry.name in dirs:
        return entry.is_dir()
    return entry.name in files and entry.is_file()


def check_out(
    out: Path, overwrite: bool, dirs: tuple[str, ...], files: tuple[str, ...], what: str
) -> bool:
    """Refuse an ``--out`` that is not a directory, or holds files that are not ``what``'s.

    Anything else in the directory (another file, a symlink in place of a run
    file) needs ``--overwrite``, which still removes only the run's own files.
    Return whether the directory holds any of them.
    """
    if not out.is_dir():
        if out.exists() or out.is_symlink():
            raise RunError(f"--out {out}: not a directory")
        return False
    try:
        entries = list(out.iterdir())
    except OSError as exc:
        raise RunError(f"--out {out}: cannot list: {exc.strerror}") from None
    foreign = [e for e in entries if not is_own(e, dirs, files)]
    if foreign and not overwrite:
        raise RunError(
            f"--out {out}: holds files that are not {what}; choose an empty or new directory,"
            " or pass --overwrite"
        )
    for entry in foreign:  # kept, but one in the way of a run's file must move first
        if entry.name in (*dirs, *files) and not entry.is_symlink():
            kind = "directory" if entry.is_dir() else "file"
            raise RunError(f"--out {out}: {entry.name} is a {kind} that is not {what}'s; move it")
    return len(foreign) < len(entries)


def remove_own(
    out: Path, dirs: tuple[str, ...], files: tuple[str, ...], *, links_only: bool = False
) -> None:
    """Remove a run's own files from ``out``; a symlink in their place loses only the link.

    ``links_only``: remove only such symlinks (resuming keeps the run's files).
    """
    for name in (*dirs, *files):
        path = out / name
        if path.is_symlink():
            path.unlink()
        elif links_only:
            continue
        elif name in files and path.is_file():
            path.unlink()
        elif name in dirs and path.is_dir():
            shutil.rmtree(path)  # never follows the symlinks inside


def make_out(out: Path) -> None:
    """Create ``out`` (and its parents) and check that it is writable."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"--out {out}: cannot create: {exc.strerror}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise RunError(f"--out {out}: not writable")


def prepare_out(out: Path, overwrite: bool) -> None:
    """Check and create a run directory (docs/operations.md, "Input limits").

    New or empty: used. Holding an earlier run: refused unless ``overwrite``,
    which removes that run's files only. Holding anything else: refused
    unless ``overwrite``, and kept.
    """
    if check_out(out, overwrite, RUN_DIRS, RUN_NAMES, "a stakeray run") and not overwrite:
        raise RunError(
            f"--out {out}: already holds a run; choose another directory or pass --overwrite"
        )
    if overwrite:
        remove_own(out, RUN_DIRS, RUN_NAMES)
    make_out(out)


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


def ledger_of(directory: Path) -> Path:
    """Return a run directory's ledger directory, or ``directory`` if it is a ledger itself."""
    if not (directory / "ledger").is_dir() and (directory / LOG_NAME).is_file():
        return directory
    return directory / "ledger"


def cmd_verify(args: argparse.Namespace) -> int:
    """Check a run's ledger read-only, replay it from genesis, compare with the summary.

    The log, every snapshot and the replay are checked (``check_ledger``);
    damage exits 2 with one line naming the file and the byte offset, and
    nothing on disk changes (a torn tail is only noted).
    """
    directory = Path(args.dir)
    try:
        check = check_ledger(ledger_of(directory))
    except (CorruptLog, CorruptSnapshot) as exc:
        print(f"error: {exc}; `stakeray repair {args.dir}` shows the way back", file=sys.stderr)
        return 2
    protocol = check.protocol
    print(f"log {check.frames} frames, {check.end} bytes; snapshots {len(check.snapshots)} ok")
    if check.torn:
        print(
            f"note: {LOG_NAME} ends in a torn frame at byte offset {check.end}"
            f" ({check.torn} bytes, cut short by a crash): the next open drops it"
        )
    protocol.check_invariants()
    stake_dust, fee_dust = protocol.unclaimable()
    digest = protocol.state_hash()
    print(f"state {digest}")
    outcomes = Counter(protocol.state.outcome_counts)
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
    for key in SUMMARY_OUTCOMES:
        recorded = summary.get(f"tasks_{key}")
        if recorded is not None and recorded != outcomes.get(key, 0):
            print(
                f"error: summary.json tasks_{key} {recorded} != ledger {outcomes.get(key, 0)}",
                file=sys.stderr,
            )
            return 1
    print("matches summary.json")
    return 0


def cmd_repair(args: argparse.Namespace) -> int:
    """Show how a damaged ledger is cut back to its last good frame; with ``--yes``, do it.

    Without ``--yes`` nothing changes: exit 1 with the plan (0: nothing to repair).
    """
    plan = plan_repair(ledger_of(Path(args.dir)))
    for line in plan.describe():
        print(line)
    if plan.empty:
        print("nothing to repair")
        return 0
    if not args.yes:
        print("nothing changed: stop the network, then run again with --yes to do this")
        return 1
    for line in apply_repair(plan):
        print(line)
    print(f"repaired: check it with `stakeray verify {args.dir}`")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write a run directory's report.html and figures."""
    from cluster.analysis.report import write_report

    print(f"report -> {write_report(Path(args.dir))}")
    return 0


# --- a long-lived network: up, submit, status, tx, down ------------------------------------


def cmd_up(args: argparse.Namespace) -> int:
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
    make_out(out)
    gcs, round_, directory = bring_up(
        config, out, address=args.address, port=args.port, num_cpus=args.num_cpus
    )
    print(
        f"network {'resumed' if args.resume else 'up'} on {gcs}: round {round_}, "
        f"{len(config.network.operators)} operators, {len(config.network.coprocessors)}"
        f" coprocessors -> {directory}"
    )
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    workload = load_workload(args.workload)
    if args.count is not None:
        workload = workload.with_count(args.count)
    with connected(args.address, args.dir) as net:
        records = submit(net, workload, paced=not args.no_pace, progress=not args.quiet)
    counts = Counter(r.outcome for r in records)
    print(f"submitted {len(records)} tasks: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    with connected(args.address, args.dir) as net:
        status = net.call("status")
    if args.json:
        status = {"address": net.address, "directory": str(net.directory), **status}
        print(json.dumps(status, indent=2, default=str))
        return 0
    print(network_line(status))
    print()
    print(operator_table(status))
    print()
    print(coprocessor_table(status))
    print()
    print("\n".join(fairness_lines(status)))  # the allocation audit, docs/operations.md
    return 0


def tx_kinds() -> dict[str, type[Tx]]:
    """Return ``stakeray tx`` names -> transaction classes: the kinds with a ``cli`` name."""
    return {kind.cli: kind for kind in TX_KINDS.values() if kind.cli is not None}


def tx_fields(kind: type[Tx]) -> tuple[str, ...]:
    """Return the fields a user types for ``kind``, in order (the key fills the signer's)."""
    return tuple(f for f in kind.fields if f not in (kind.signer, kind.filled_by_signer))


def is_int_field(kind: type[Tx], name: str) -> bool:
    """Return whether field ``name`` of ``kind`` is an ``int`` (or ``int | None``)."""
    annotation = kind.model_fields[name].annotation
    if get_origin(annotation) in (Union, UnionType):
        args = get_args(annotation)
        members = {get_args(a)[0] if get_origin(a) is Annotated else a for a in args}
        return int in members and members <= {int, NoneType}
    return annotation is int


def build_tx(kind: str, actor: str, values: list[str]) -> dict[str, Any]:
    """Build the plain transaction for ``stakeray tx KIND FIELD=VALUE ...``.

    Amounts (the kind's token fields) are typed in tokens, integer fields as
    integers; every field without a default is required.
    """
    transaction = tx_kinds()[kind]
    fields = tx_fields(transaction)
    plain: dict[str, Any] = {"kind": transaction.KIND, str(transaction.signer): actor}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or name not in fields:
            raise RunError(
                f"tx {kind}: {item!r}: expected one of {', '.join(fields) or '(none)'}=VALUE"
            )
        try:
            if name in transaction.token_fields:
                plain[name] = tokens(value)
            elif is_int_field(transaction, name):
                plain[name] = int(value)
            else:
                plain[name] = value
        except (ValueError, ArithmeticError):
            raise RunError(f"tx {kind}: {name}: not a number: {value!r}") from None
    required = [f for f in fields if transaction.model_fields[f].is_required()]
    missing = [f for f in required if f not in plain]
    if missing:
        raise RunError(f"tx {kind}: missing {', '.join(f'{m}=' for m in missing)}")
    return plain


def cmd_tx(args: argparse.Namespace) -> int:
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
    with connected(args.address, args.dir) as net:
        nonce = args.nonce if args.nonce is not None else net.call("nonce", actor)
        chain_id = net.call("chain_id")  # the signature is valid on this network only
        receipt = net.call("submit_signed", sign_tx(key, nonce, transaction, chain_id))
    if not receipt.accepted:
        print(f"error: refused: {receipt.describe()}", file=sys.stderr)
        return 1
    print(
        f"accepted {args.kind} from {actor[:12]}... nonce {nonce}"
        + (f": {receipt.result}" if receipt.result else "")
    )
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    with connected(args.address, args.dir) as net:
        summary = take_down(net)
    stop_local_head(net)
    print(
        f"network down: rounds {summary['rounds']}  conservation "
        f"{'ok' if summary['conservation_ok'] else 'FAILED'}  state {summary['state_hash'][:16]}"
        f"  -> {net.directory}"
    )
    return 0 if summary["conservation_ok"] else 1


def cmd_simulate(args: argparse.Namespace) -> int:
    """Run an experiment's sweep, or a network config, with drawn outcomes."""
    from cluster.analysis.experiment_report import write_experiment_report
    from cluster.analysis.simulate import ExperimentConfig, load_experiment, run_experiment

    if is_network_config(args.experiment):
        return simulate_network(args)
    config = load_experiment(args.experiment)
    for flag in ("rounds", "seeds"):  # overrides of the experiment file
        if (given := getattr(args, flag)) is not None:
            try:
                config = ExperimentConfig.model_validate({**config.model_dump(), flag: given})
            except ValidationError as exc:
                raise first_error(exc, f"--{flag} {given}") from None
    out = Path(args.out)
    what = "a stakeray experiment"
    check_out(out, args.overwrite, EXPERIMENT_DIRS, EXPERIMENT_NAMES, what)
    if (out / "summary.json").exists() and not (args.resume or args.overwrite):
        raise RunError(
            f"--out {out}: already holds results; pass --resume to continue"
            " or --overwrite to start again"
        )
    if args.overwrite:
        remove_own(out, EXPERIMENT_DIRS, EXPERIMENT_NAMES, links_only=args.resume)
    make_out(out)
    address = args.address or os.environ.get("RAY_ADDRESS") or None
    if address is None and (args.workers or 1) == 1:  # in this process, one point at a time
        summary = run_experiment(config, out, progress=not args.quiet)
    else:
        from cluster.runtime.sweep import ray_sweep

        with ray_sweep(args.workers, args.address) as runner:
            summary = run_experiment(config, out, progress=not args.quiet, runner=runner)
    print(sweep_table(config, summary["sweep"]))
    print(f"{len(summary['sweep'])} points in {summary['elapsed_s']:.1f} s -> {out}")
    print(f"report: {write_experiment_report(out)}")
    return 0


def is_network_config(path: str) -> bool:
    """Whether ``path`` holds a network config (``network:``), not an experiment."""
    data = read_yaml(path)
    return isinstance(data, dict) and "network" in data


def simulate_network(args: argparse.Namespace) -> int:
    """Run a network config on the market engine in this process with drawn outcomes
    (no kernel runs): the same run directory as ``stakeray run``, for ``compare``."""
    from cluster.engine.execution import DrawnExecution

    for flag in ("rounds", "seeds", "workers", "address"):
        if getattr(args, flag) is not None:
            raise RunError(f"--{flag}: for experiment sweeps; a network config runs as it is")
    config = load_config(args.experiment)
    if config.workload is None:
        raise ConfigError(f"{args.experiment}: workload: missing")
    if args.count is not None:
        config = config.model_copy(update={"workload": config.workload.with_count(args.count)})
    out = Path(args.out)
    prepare_out(out, args.overwrite)
    network = config.network
    execution = DrawnExecution([*network.coprocessors, *network.operators], config.seed)
    result = run_cluster(
        config,
        out,
        progress=not args.quiet,
        local=True,
        paced=False,
        report=True,
        execution=execution,
    )
    print_result(result)
    print(f"simulated (drawn outcomes) -> {out}; compare with a live run: stakeray compare")
    return 0 if result.summary["conservation_ok"] else 1


def cmd_compare(args: argparse.Namespace) -> int:
    """Show a live run and a simulated one side by side (reward shares, concentration)."""
    from cluster.analysis.compare import compare, format_comparison, write_comparison
    from cluster.analysis.report import write_report

    try:
        result = compare(Path(args.live), Path(args.simulated))
    except FileNotFoundError as exc:
        raise RunError(str(exc)) from None
    print(format_comparison(result))
    write_comparison(result)
    print(f"report -> {write_report(Path(args.live))} (section: live against simulated)")
    return 0


def cmd_earnings(args: argparse.Namespace) -> int:
    """Show one account's earnings round by round, rebuilt from the run's ledger log.

    Exit 2 (one line) for an account the ledger never held or that never bonded,
    1 if the rows do not reconcile with the ledger's state (a bug).
    """
    from cluster.analysis.earnings import reconcile, replay_earnings, write_earnings_csv
    from cluster.cli.tables import earnings_table

    protocol, rows = replay_earnings(ledger_of(Path(args.dir)), args.address)
    print(earnings_table(rows))
    last = rows[-1]
    print(
        f"totals: rewards {format_tokens(last.total_rewards, 6)}"
        f"  fees {format_tokens(last.total_fees, 6)}"
        f"  slashed {format_tokens(last.total_slashed, 6)}"
        f"  pending stake {format_tokens(last.pending_stake, 6)}"
        f"  pending fees {format_tokens(last.pending_fees, 6)}"
    )
    if args.csv:
        write_earnings_csv(rows, args.csv)
        print(f"csv -> {args.csv}")
    problems = reconcile(protocol, args.address, rows)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if not problems:
        print("reconciles with the ledger to the base unit (pending stake, fees, locks, balance)")
    return 1 if problems else 0


def cmd_whatif(args: argparse.Namespace) -> int:
    """Preview parameter changes (or an open proposal) on a run's forked ledger: N rounds
    forward under today's parameters and the proposed ones; the run directory is only read."""
    from cluster.analysis.whatif import parse_changes, run_whatif
    from cluster.cli.tables import whatif_table

    if bool(args.set) == (args.proposal is not None):
        raise RunError("whatif: give --set KEY=VALUE (one or more) or --proposal ID")
    changes = parse_changes(args.set or [])
    preview = run_whatif(args.dir, changes, args.rounds, args.seed, proposal=args.proposal)
    print(whatif_table(preview.rows(), preview.summary()))
    if args.csv:
        preview.write_csv(args.csv)
        print(f"csv -> {args.csv}")
    return 0


def cmd_explorer(args: argparse.Namespace) -> int:
    """Serve a live web explorer of a network's ledger until Ctrl-C; the ledger is only read."""
    import time

    from cluster.analysis.explorer import Explorer

    if args.dir is not None:
        directory = Path(args.dir)
    else:
        with connected(args.address, None) as net:
            directory = net.directory
        if not directory.is_dir():
            raise RunError(
                f"the network's run directory {directory} is on the coordinator's node, not"
                " here: run the explorer there, or give --dir a copy or mount of it"
            )
    explorer = Explorer(directory, host=args.host, port=args.port)
    if args.nice and hasattr(os, "nice"):
        # Replaying the log's tail is the protocol's work over again: on the market's own
        # machine the explorer takes only the CPU the market leaves (docs/explorer.md).
        os.nice(args.nice)
    print(f"reading {explorer.ledger_dir} ...", flush=True)
    explorer.start()
    round_ = explorer.history.protocol.round if explorer.history is not None else 0
    print(f"explorer on {explorer.url} (round {round_}); Ctrl-C stops it", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("explorer stopped", flush=True)
    finally:
        explorer.close()
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


def int_arg(low: int, high: int | None = None) -> Callable[[str], int]:
    """Return an argparse ``type`` for an integer in ``[low, high]`` (one-line usage error)."""
    rule = f"from {low:,} to {high:,}" if high is not None else f">= {low}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            shown = text if len(text) <= 40 else text[:37] + "..."
            raise argparse.ArgumentTypeError(f"must be an integer {rule}, got {shown!r}")
        return value

    return parse


COUNT = int_arg(1, MAX_TASKS)
"""``--count``: tasks, 1 to MAX_TASKS (the workload's own bound)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stakeray", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a network and workload on Ray, write a run directory")
    run.add_argument("config", help="YAML with the network (and the workload)")
    run.add_argument("--workload", help="separate workload YAML")
    run.add_argument("--out", required=True, help="run directory to create")
    run.add_argument("--address", help="Ray cluster to join (default: RAY_ADDRESS, else local)")
    run.add_argument("--chaos", help="kill-coordinator=N,kill-coprocessor=N,kill-node=N")
    run.add_argument("--count", type=COUNT, help="override the workload's task count")
    run.add_argument("--no-pace", action="store_true", help="submit at once, ignore arrival times")
    run.add_argument("--local", action="store_true", help="run in this process without Ray")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    run.set_defaults(func=cmd_run)

    verify = sub.add_parser("verify", help="replay a run's log and check it (read-only)")
    verify.add_argument("dir", help="run directory")
    verify.set_defaults(func=cmd_verify)

    repair = sub.add_parser(
        "repair", help="cut a damaged ledger back to its last good frame (a dry run without --yes)"
    )
    repair.add_argument("dir", help="run directory (or its ledger directory)")
    repair.add_argument(
        "--yes", action="store_true", help="do it: the cut bytes and snapshots are kept aside"
    )
    repair.set_defaults(func=cmd_repair)

    report = sub.add_parser("report", help="write a run directory's report.html and figures")
    report.add_argument("dir", help="run directory")
    report.set_defaults(func=cmd_report)

    earnings = sub.add_parser(
        "earnings", help="one account's rewards, fees and slashes per round, from a run's ledger"
    )
    earnings.add_argument("address", help="the account (delegator or operator)")
    earnings.add_argument("--dir", required=True, help="run directory (or its ledger directory)")
    earnings.add_argument("--csv", help="also write every column, in base units, to this CSV")
    earnings.set_defaults(func=cmd_earnings)

    up = sub.add_parser("up", help="start (or join) Ray and deploy a long-lived network")
    up.add_argument("config", nargs="?", help="YAML with the network (with --resume: optional)")
    up.add_argument("--workload", help="workload YAML whose deadline the network uses")
    up.add_argument("--out", required=True, help="run directory of this network")
    up.add_argument(
        "--address", help="Ray cluster to join (default: start a head here, token auth on)"
    )
    up.add_argument(
        "--port", type=int_arg(1, 65535), default=6379, help="port of a local head (default 6379)"
    )
    up.add_argument("--num-cpus", type=int_arg(1, 4096), help="CPUs of a local head")
    up.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    up.add_argument(
        "--resume", action="store_true", help="redeploy onto --out's ledger (after losing the head)"
    )
    up.set_defaults(func=cmd_up)

    submit = sub.add_parser("submit", help="submit a workload to a network that is up")
    submit.add_argument("workload", help="workload YAML")
    add_locator(submit)
    submit.add_argument("--count", type=COUNT, help="override the workload's task count")
    submit.add_argument("--no-pace", action="store_true", help="submit at once")
    submit.add_argument("--quiet", action="store_true", help="no progress bar")
    submit.set_defaults(func=cmd_submit)

    status = sub.add_parser("status", help="operators and coprocessors of a network that is up")
    add_locator(status)
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=cmd_status)

    tx = sub.add_parser("tx", help="sign and send a protocol transaction from the keystore")
    tx.add_argument("kind", choices=sorted(tx_kinds()), help="transaction")
    tx.add_argument("fields", nargs="*", help="FIELD=VALUE (amounts in tokens)")
    tx.add_argument("--key", required=True, help="key name or address in the keystore")
    add_locator(tx)
    tx.add_argument(
        "--keystore", help="keystore directory (default: STAKERAY_KEYSTORE or ~/.stakeray/keys)"
    )
    tx.add_argument(
        "--nonce", type=int_arg(0), help="nonce to sign with (default: the account's next)"
    )
    tx.set_defaults(func=cmd_tx)

    down = sub.add_parser(
        "down", help="finish a network: summary, report, stop its actors (and the head up started)"
    )
    add_locator(down)
    down.set_defaults(func=cmd_down)

    explorer = sub.add_parser(
        "explorer", help="serve a live web explorer of a network's ledger (read-only)"
    )
    where = explorer.add_mutually_exclusive_group(required=True)
    where.add_argument("--dir", help="run directory (or ledger directory) to read")
    where.add_argument("--address", help="Ray cluster the network is on: its run directory is read")
    explorer.add_argument(
        "--port", type=int_arg(0, 65535), default=8765, help="port (default 8765; 0: any free)"
    )
    explorer.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine)"
    )
    explorer.add_argument(
        "--nice",
        type=int_arg(0, 19),
        default=19,
        help="lower the explorer's CPU priority by this much (default 19, the lowest, below"
        " Ray's workers; 0: unchanged)",
    )
    explorer.set_defaults(func=cmd_explorer)

    simulate = sub.add_parser(
        "simulate", help="run an experiment sweep, or a network config, with drawn outcomes"
    )
    simulate.add_argument(
        "experiment",
        help="experiment YAML (e.g. examples/paper.yaml) or network config"
        " (e.g. examples/paper-live.yaml: a run directory, as `run` writes)",
    )
    simulate.add_argument("--out", required=True, help="output directory")
    simulate.add_argument("--rounds", type=int_arg(1), help="override the number of rounds")
    simulate.add_argument(
        "--seeds",
        type=int_arg(1, 1000),
        help="override the number of Monte Carlo seeds per sweep point (seeds 0..N-1)",
    )
    simulate.add_argument("--resume", action="store_true", help="keep finished points in --out")
    simulate.add_argument("--overwrite", action="store_true", help="start --out afresh")
    simulate.add_argument("--quiet", action="store_true", help="no progress line")
    simulate.add_argument(
        "--count", type=int_arg(1), help="network config: override the workload's task count"
    )
    simulate.add_argument(
        "--workers",
        type=int_arg(1, 4096),
        help="run the points as Ray tasks, N at a time, on a local Ray with N CPUs"
        " (default 1: in this process; with --address: N in flight, default the cluster's CPUs)",
    )
    simulate.add_argument(
        "--address", help="Ray cluster to run the points on (default: RAY_ADDRESS, else --workers)"
    )
    simulate.set_defaults(func=cmd_simulate)

    comparison = sub.add_parser(
        "compare", help="a live run beside a simulated one: reward shares, Gini, divergence"
    )
    comparison.add_argument("live", help="run directory of `stakeray run`")
    comparison.add_argument("simulated", help="run directory of `stakeray simulate NETWORK.yaml`")
    comparison.set_defaults(func=cmd_compare)

    whatif = sub.add_parser(
        "whatif",
        help="preview parameter changes on a run's forked ledger (read-only): rewards and fees"
        " per staker, today against proposed",
    )
    whatif.add_argument("dir", help="run directory (ledger and config.json)")
    whatif.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="a protocol parameter (protocol/params.py) to change; repeat for more",
    )
    whatif.add_argument(
        "--proposal", type=int_arg(0), help="preview this open governance proposal instead"
    )
    whatif.add_argument(
        "--rounds", type=int_arg(1, 100_000), default=20, help="rounds forward (default 20)"
    )
    whatif.add_argument("--seed", type=int_arg(0), help="seed of the draws (default: the run's)")
    whatif.add_argument("--csv", help="also write the per-staker rows here (base units)")
    whatif.set_defaults(func=cmd_whatif)

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
    except StakerayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130

"""The ``stakeray`` command line."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from protocol import TOKEN, ProtocolError
from protocol.ledger import Ledger, LedgerError

from .config import ConfigError, load_config
from .economy import run_economy


def format_tokens(amount: int, places: int = 4) -> str:
    """Format base units as tokens (display only; money stays integer)."""
    whole, frac = divmod(abs(amount), TOKEN)
    sign = "-" if amount < 0 else ""
    return f"{sign}{whole:,}.{frac * 10**places // TOKEN:0{places}d}"


def cmd_run(args: argparse.Namespace) -> int:
    config = load_config(args.config, args.workload)
    if args.rounds is not None:
        config.workload.rounds = args.rounds
    out = Path(args.out)
    if (out / "ledger" / "events.log").exists():
        if not args.overwrite:
            print(
                f"error: --out {out}: already holds a run; choose another directory"
                " or pass --overwrite",
                file=sys.stderr,
            )
            return 2
        remove_run(out)
    result = run_economy(config, out, progress=not args.quiet)
    print(f"{'operator':<16}{'stake':>22}{'delegators':>12}{'rewards':>22}{'fees':>18}")
    for op in sorted(result.rewards):
        print(
            f"{op:<16}{format_tokens(result.stakes.get(op, 0)):>22}"
            f"{result.delegator_counts.get(op, 0):>12}"
            f"{format_tokens(result.rewards[op]):>22}{format_tokens(result.fees[op]):>18}"
        )
    print(
        f"rounds {result.rounds}  minted {format_tokens(result.minted)}  "
        f"conservation {'ok' if result.conservation_ok else 'FAILED'}  "
        f"state {result.state_hash[:16]}  ({result.elapsed_s:.1f} s) -> {out}"
    )
    return 0 if result.conservation_ok else 1


def remove_run(directory: Path) -> None:
    """Delete what a previous run wrote in ``directory`` (and nothing else)."""
    shutil.rmtree(directory / "ledger", ignore_errors=True)
    for name in ("rounds.csv", "summary.json"):
        (directory / name).unlink(missing_ok=True)


def cmd_verify(args: argparse.Namespace) -> int:
    """Replay a run's log from genesis, check every invariant, compare the state hash."""
    directory = Path(args.dir)
    protocol = Ledger.replay(directory / "ledger")
    protocol.check_invariants()
    stake_dust, fee_dust = protocol.unclaimable()
    digest = protocol.state_hash()
    print(f"state {digest}")
    print(f"rounds {protocol.round}  invariants ok  unclaimable dust {stake_dust}/{fee_dust}")
    summary_path = directory / "summary.json"
    if summary_path.exists():
        recorded = json.loads(summary_path.read_text()).get("state_hash")
        if recorded != digest:
            print(f"error: state hash differs from summary.json ({recorded})", file=sys.stderr)
            return 1
        print("matches summary.json")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stakeray", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a network and workload, write a run directory")
    run.add_argument("config", help="YAML with the network (and the workload)")
    run.add_argument("--workload", help="separate workload YAML")
    run.add_argument("--out", required=True, help="run directory to create")
    run.add_argument("--rounds", type=int, help="override workload.rounds")
    run.add_argument("--quiet", action="store_true", help="no progress line")
    run.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    run.set_defaults(func=cmd_run)
    verify = sub.add_parser("verify", help="replay a run's log and check it")
    verify.add_argument("dir", help="run directory")
    verify.set_defaults(func=cmd_verify)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ConfigError, LedgerError, ProtocolError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

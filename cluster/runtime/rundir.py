"""The run directory's files besides the ledger: task rows, network state, summary, report.

Everything here runs on the coordinator's node (see :mod:`cluster.runtime.nodes`),
where the ledger is, so a run directory is never split across machines.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cluster.analysis.history import (
    LedgerTask,
    RunHistory,
    replay_run,
    replay_tasks,
    write_round_rows,
)
from cluster.engine.messages import TaskRecord, TaskStatus, parse_status
from cluster.engine.transport import Transport
from cluster.runtime.actors import Deployment
from cluster.runtime.errors import RunError
from cluster.runtime.transport import RayTransport
from protocol.state import Outcome, State

TASK_COLUMNS = [
    "task_id",
    "kind",
    "size",
    "operator",
    "coprocessor",
    "fee",
    "price",
    "attempts",
    "outcome",
    "latency_s",
]
RUN_FILES = ("tasks.csv", "rounds.csv", "summary.json")
SUMMARY_OUTCOMES = (Outcome.SETTLED, Outcome.REFUNDED, Outcome.FAILED)
"""The outcomes ``summary.json`` counts as ``tasks_settled``, ``tasks_refunded``, ``tasks_failed``
(and ``stakeray verify`` checks against the ledger)."""
STATE_FILE = "cluster.json"
"""A network's state between commands: the Ray address, the head `up` started, busy time."""


@dataclass
class RunResult:
    """What a run produced: the summary, the task rows and the per-operator totals."""

    directory: Path
    summary: dict[str, Any]
    records: list[TaskRecord]
    status: dict[str, Any]
    rewards: dict[str, int] = field(default_factory=dict)
    fees: dict[str, int] = field(default_factory=dict)


def finish_directory(
    out: Path,
    deployment: Deployment,
    transport: Transport,
    records: list[TaskRecord] | None,
    elapsed: float,
    chaos: list[Any] | None = None,
    report: bool = False,
) -> RunResult:
    """Drain, reconcile task rows with the ledger, close it, write the run's files.

    ``records`` None reads the rows earlier submissions appended to ``tasks.csv``;
    ``report`` writes the report too.
    """
    call, get = transport.call, transport.get
    coordinator = deployment.coordinator
    if records is None:
        records = read_tasks_csv(out / "tasks.csv")
    get(call(coordinator, "drain"))
    ledger = get(call(coordinator, "finish"))
    status = get(call(coordinator, "status"))
    get(call(coordinator, "close"))
    by_id = {r.task_id: r for r in records}
    run = replay_run(out / "ledger", lambda task_id: task_id not in by_id)  # the one replay
    write_round_rows(run.rows, out / "rounds.csv")
    records[:] = from_ledger(out / "ledger", records, run.protocol.state, run)
    write_tasks_csv(out / "tasks.csv", records)
    rewards, fees = operator_totals(out / "rounds.csv")
    counts = Counter(r.outcome for r in records)
    summary = {
        "tasks_submitted": len(records),
        **{f"tasks_{k}": counts[k] for k in SUMMARY_OUTCOMES},
        **jsonable(ledger),
        "throughput_tasks_per_s": round(counts[Outcome.SETTLED] / max(elapsed, 1e-9), 3),
        "elapsed_s": round(elapsed, 3),
        "coprocessor_slashes": sum(c["slashes"] for c in status["coprocessors"]),
        "coprocessor_misses": sum(c["misses"] for c in status["coprocessors"]),
        "chaos": chaos or [],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if report:
        from cluster.analysis.report import write_report

        write_report(out)
    return RunResult(out, summary, records, status, rewards, fees)


def from_ledger(
    ledger_dir: Path,
    records: list[TaskRecord],
    state: State,
    run: RunHistory | None = None,
) -> list[TaskRecord]:
    """Return one row per task the ledger holds, in task id order; the ledger decides.

    A client's row takes the ledger's outcome (a host may have been lost
    mid-batch); a task no client recorded (its client died before writing
    its rows, or an outside escrow) gets a row rebuilt from the log, with an
    empty kind. Rows of ids the ledger never escrowed are dropped. ``state``
    is the final state (its open tasks); outcomes come from a replay of the
    log, since the state keeps only recent ones.
    """
    by_id = {r.task_id: r for r in records}
    if run is None:
        outcomes, logged = replay_tasks(ledger_dir, lambda task_id: task_id not in by_id)
    else:  # the caller's replay picked the same tasks
        outcomes, logged = run.outcomes, run.found
    rows = []
    for task_id in sorted([*outcomes, *state.tasks]):
        done = outcomes.get(task_id)
        status = done[0] if done is not None else TaskStatus.OPEN
        record = by_id.get(task_id)
        if record is None:
            t = logged.get(task_id, LedgerTask(task_id))
            paid = status in (Outcome.SETTLED, Outcome.AUDITED)
            record = TaskRecord(
                task_id,
                "",
                0,
                t.operator,
                t.coprocessor if paid else "",
                t.fee,
                t.price if paid else 0,
                t.faults + (1 if paid else 0),
                status,
                0.0,
            )
        rows.append(reconcile(record, status, done[1] if done is not None else None))
    return rows


def reconcile(
    record: TaskRecord, status: Outcome | TaskStatus, operator: str | None
) -> TaskRecord:
    """Take the ledger's final outcome (it decides; a host may have been lost mid-batch)."""
    if record.outcome == status:
        return record
    settled = status == Outcome.SETTLED
    return TaskRecord(
        record.task_id,
        record.kind,
        record.size,
        record.operator or (operator or ""),
        record.coprocessor if settled else "",
        record.fee,
        record.price if settled else 0,
        record.attempts,
        status,
        record.latency_s,
    )


def jsonable(values: dict[str, Any]) -> dict[str, Any]:
    """Amounts become strings: base units exceed JSON's safe integers."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out[key] = jsonable(value)
        elif isinstance(value, int) and not isinstance(value, bool) and key not in ("rounds",):
            out[key] = str(value) if key != "inflation_ppb" else value
        else:
            out[key] = value
    return out


def write_tasks_csv(path: Path, records: list[TaskRecord], *, append: bool = False) -> None:
    """Write ``tasks.csv`` (or append to it, with the header only when it is new)."""
    header = not (append and path.exists())
    with path.open("a" if append else "w", newline="") as fh:
        writer = csv.writer(fh)
        if header:
            writer.writerow(TASK_COLUMNS)
        for r in records:
            writer.writerow([getattr(r, c) for c in TASK_COLUMNS])


def read_tasks_csv(path: Path) -> list[TaskRecord]:
    if not path.exists():
        return []
    with path.open() as fh:
        return [
            TaskRecord(
                int(row["task_id"]),
                row["kind"],
                int(row["size"]),
                row["operator"],
                row["coprocessor"],
                int(row["fee"]),
                int(row["price"]),
                int(row["attempts"]),
                parse_status(row["outcome"]),
                float(row["latency_s"]),
            )
            for row in csv.DictReader(fh)
        ]


def operator_totals(rounds_csv: Path) -> tuple[dict[str, int], dict[str, int]]:
    """Sum each operator's rewards and fees over the run's rounds."""
    rewards: dict[str, int] = {}
    fees: dict[str, int] = {}
    with rounds_csv.open() as fh:
        for row in csv.DictReader(fh):
            if row["role"] != "operator":
                continue
            name = row["participant"]
            rewards[name] = rewards.get(name, 0) + int(row["rewards"])
            fees[name] = fees.get(name, 0) + int(row["fees"])
    return rewards, fees


# --- a long-lived network (``stakeray up`` ... ``down``) -------------------------------------


def read_state(directory: Path) -> dict[str, Any]:
    """Return ``cluster.json`` of a network that is up, or {} when there is none."""
    path = directory / STATE_FILE
    if not path.exists():
        return {}
    try:
        state = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunError(
            f"{path}: not a network record ({exc}); remove it if no network is up"
        ) from None
    if not isinstance(state, dict):
        raise RunError(f"{path}: not a network record (a JSON object); remove it")
    return state


def write_state(directory: Path, state: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")


def record_submission(directory: Path, records: list[TaskRecord], elapsed: float) -> None:
    """Append a submission's task rows and add its seconds to the network's busy time."""
    write_tasks_csv(directory / "tasks.csv", records, append=True)
    state = read_state(directory)
    state["elapsed_s"] = state.get("elapsed_s", 0.0) + elapsed
    write_state(directory, state)


def finish_network(directory: Path, deployment: Deployment) -> dict[str, Any]:
    """Finish a network for ``stakeray down``: every run file and the report; return the summary."""
    elapsed = read_state(directory).get("elapsed_s", 0.0)
    result = finish_directory(directory, deployment, RayTransport(), None, elapsed, report=True)
    (directory / STATE_FILE).unlink(missing_ok=True)
    return result.summary

"""What the terminal shows: the progress reporter (rich) and the tables (rich, as text)."""

from __future__ import annotations

import re
from io import StringIO
from pathlib import Path
from types import SimpleNamespace

import pytest

from cluster.analysis.simulate import ExperimentConfig, run_experiment
from cluster.cli.tables import (
    coprocessor_table,
    format_ppm,
    format_tokens,
    network_line,
    operator_table,
)
from cluster.engine.progress import Progress
from protocol import TOKEN

CONTROL = re.compile(r"[\x1b\r\x08]")  # ANSI escapes, carriage returns, backspaces


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def rows(*outcomes: str) -> list[SimpleNamespace]:
    return [SimpleNamespace(outcome=o) for o in outcomes]


# --- progress ------------------------------------------------------------------------------


def test_progress_off_a_terminal_writes_a_plain_line_every_5_seconds_and_one_at_close() -> None:
    stream, clock = StringIO(), Clock()
    bar = Progress(10, stream=stream, tty=False, clock=clock)
    clock.now += 1
    bar.update(rows("settled", "settled"), 1)  # the first report is shown
    clock.now += 1
    bar.update(rows("refunded"), 1)  # 1 s later: not yet
    clock.now += 4.5
    bar.update(rows("settled"), 2)  # 5.5 s after the first: a line
    clock.now += 1
    bar.update(rows("failed"), 3)
    bar.close()
    bar.close()  # once only
    text = stream.getvalue()
    assert not CONTROL.search(text)
    lines = text.splitlines()
    assert text.endswith("\n") and len(lines) == 3
    assert lines[0] == "tasks 2/10 (20%)  settled 2  round 1  2.0 tasks/s"
    assert lines[1].startswith("tasks 4/10 (40%)  refunded 1  settled 3  round 2  ")
    assert lines[2].startswith("tasks 5/10 (50%)  failed 1  refunded 1  settled 3  round 3  ")
    assert lines[2].endswith(" tasks/s")
    assert bar.done == 5 and bar.counts == {"settled": 3, "refunded": 1, "failed": 1}


def test_progress_force_draws_at_once() -> None:
    stream, clock = StringIO(), Clock()
    bar = Progress(4, stream=stream, tty=False, clock=clock)
    bar.update(rows("settled"), 1)
    bar.update(rows("settled"), 1, force=True)
    assert len(stream.getvalue().splitlines()) == 2


def test_progress_disabled_writes_nothing_but_counts() -> None:
    for tty in (False, True):
        stream = StringIO()
        bar = Progress(3, enabled=False, stream=stream, tty=tty)
        bar.update(rows("settled", "refunded"), 1, force=True)
        bar.advance(1, round_=2, note="x", force=True)
        bar.close()
        assert stream.getvalue() == ""
        assert bar.done == 3 and bar.counts == {"settled": 1, "refunded": 1}


def test_progress_on_a_terminal_is_a_rich_bar_redrawn_at_most_every_quarter_second() -> None:
    stream, clock = StringIO(), Clock()
    bar = Progress(10, stream=stream, tty=True, clock=clock)
    bar.update(rows("settled"), 1)
    assert bar._bar is not None and bar._bar.live.is_started
    drawn = stream.getvalue()
    clock.now += 0.1
    bar.update(rows("settled"), 1)  # within 0.25 s: no redraw
    assert stream.getvalue() == drawn
    clock.now += 0.2
    bar.update(rows("settled", "refunded"), 2)
    assert len(stream.getvalue()) > len(drawn)
    bar.close()
    assert not bar._bar.live.is_started
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", stream.getvalue())
    assert "4/10" in plain and "refunded 1  settled 3  round 2" in plain


def test_progress_counts_units_with_a_note() -> None:
    stream, clock = StringIO(), Clock()
    bar = Progress(6, unit="rounds", stream=stream, tty=False, clock=clock)
    bar.advance(0, note="point 1/2 x=1 seed 0")
    clock.now += 2
    bar.advance(3, round_=3)
    bar.advance(0, note="point 2/2 x=2 seed 0")
    bar.advance(3, round_=3)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "point 1/2 x=1 seed 0 0/6 (0%)  0.0 rounds/s"
    assert lines[-1] == "point 2/2 x=2 seed 0 6/6 (100%)  round 3  3.0 rounds/s"


def test_simulator_reports_rounds_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = ExperimentConfig.model_validate(
        {
            "name": "tiny",
            "seed": 1,
            "rounds": 5,
            "seeds": 1,
            "operators": {"count": 3, "stake": [1000, 2000], "reliability": [0.9, 0.95]},
            "coprocessors": {"count": 2, "stake": [500, 1000], "reliability": [0.8, 0.9]},
            "tasks": {"per_round": 10},
            "params": {"max_active_operators": 3, "inflation_change": 0},
            "sweep": {"slash_fraction": [10_000, 20_000]},
        }
    )
    total = len(config.points()) * config.seeds * config.rounds
    for _ in range(2):  # the second run resumes every point: still counted
        run_experiment(config, tmp_path / "out", progress=True)
        err = capsys.readouterr().err
        assert not CONTROL.search(err)
        assert f" {total}/{total} (100%)" in err.splitlines()[-1]
        assert err.splitlines()[-1].startswith("point 2/2 slash_fraction=20000 seed 0 ")
    run_experiment(config, tmp_path / "out", progress=False)
    assert capsys.readouterr().err == ""


# --- tables --------------------------------------------------------------------------------


def operator(name: str, stake: int, **more: object) -> dict[str, object]:
    row: dict[str, object] = {
        "operator": name,
        "stake": stake * TOKEN,
        "delegators": 7,
        "reward_cut": 100_000,
        "fee_share": 900_000,
        "active": True,
        "reputation": 0.91234,
        "rewards_last_round": TOKEN // 3,
        "fees_last_round": 2 * TOKEN,
    }
    return {**row, **more}


STATUS: dict[str, object] = {
    "round": 12,
    "open_tasks": 3,
    "finished_tasks": 480,
    "total_supply": 1_000_000 * TOKEN,
    "minted": 12 * TOKEN + 5,
    "burned": 3 * TOKEN // 2,
    "inflation_ppb": 123_456,
    "operators": [
        operator("op-alpha", 5000, delegators=120),
        operator("op-[beta]", 1_234_567, active=False, reputation=0.5, reward_cut=0),
        operator("op-gamma", 1, fees_last_round=0, rewards_last_round=7),
    ],
    "coprocessors": [
        {
            "coprocessor": f"gpu-{c}",
            "collateral": (1000 + n) * TOKEN,
            "locked": n * TOKEN // 4,
            "reputation": 0.25 * n,
            "load": n,
            "capacity": 8,
            "wins": 10 * n,
            "slashes": n % 2,
            "misses": 3 * n,
            "balance": 55 * TOKEN + n,
        }
        for n, c in enumerate("abcd")
    ],
}


def cells(line: str) -> list[str]:
    return line.split()


def row_of(table: str, name: str) -> list[str]:
    (line,) = [x for x in table.splitlines() if x.startswith(name + " ")]
    return cells(line)


def test_operator_table_has_every_operator_and_number() -> None:
    for rewards, fees in ((None, None), ({"op-alpha": 5 * TOKEN}, {"op-gamma": TOKEN // 8})):
        table = operator_table(STATUS, rewards, fees)
        assert not CONTROL.search(table)
        lines = table.splitlines()
        extra = (
            ["rewards", "(run)", "fees", "(run)"] if rewards else ["rewards/round", "fees/round"]
        )
        assert cells(lines[0]) == [
            "operator",
            "stake",
            "delegators",
            "cut",
            "fee",
            "share",
            "active",
            "reputation",
            *extra,
        ]
        assert set(lines[1]) == {"-"}
        assert len(lines) == 2 + len(STATUS["operators"])  # one line a row: nothing wraps
        # by stake, largest first
        assert [cells(x)[0] for x in lines[2:]] == ["op-[beta]", "op-alpha", "op-gamma"]
        for op in STATUS["operators"]:
            name = op["operator"]
            if rewards is None:
                paid = [
                    format_tokens(op["rewards_last_round"]),
                    format_tokens(op["fees_last_round"]),
                ]
            else:
                paid = [format_tokens(rewards.get(name, 0)), format_tokens(fees.get(name, 0))]
            assert row_of(table, name) == [
                name,
                format_tokens(op["stake"]),
                str(op["delegators"]),
                format_ppm(op["reward_cut"]),
                format_ppm(op["fee_share"]),
                "yes" if op["active"] else "no",
                f"{op['reputation']:.3f}",
                *paid,
            ]
    assert row_of(operator_table(STATUS), "op-[beta]")[1] == "1,234,567.0000"


def test_coprocessor_table_has_every_coprocessor_and_number() -> None:
    table = coprocessor_table(STATUS)
    assert not CONTROL.search(table)
    lines = table.splitlines()
    assert cells(lines[0]) == [
        "coprocessor",
        "collateral",
        "locked",
        "reputation",
        "load",
        "wins",
        "slashes",
        "misses",
        "earned",
    ]
    assert len(lines) == 2 + len(STATUS["coprocessors"])
    for c in STATUS["coprocessors"]:
        assert row_of(table, c["coprocessor"]) == [
            c["coprocessor"],
            format_tokens(c["collateral"]),
            format_tokens(c["locked"]),
            f"{c['reputation']:.3f}",
            f"{c['load']}/{c['capacity']}",
            str(c["wins"]),
            str(c["slashes"]),
            str(c["misses"]),
            format_tokens(c["balance"]),
        ]
    # columns line up: every number ends where its header ends (right-aligned)
    ends = [m.end() for m in re.finditer(r"\S+", lines[0])]
    for line in lines[2:]:
        assert [m.end() for m in re.finditer(r"\S+", line)][1:] == ends[1:]


def test_tables_never_wrap_a_long_row() -> None:
    wide = {**STATUS, "operators": [operator("op-" + "x" * 60, 10**12)]}
    lines = operator_table(wide).splitlines()
    assert len(lines) == 3 and lines[2].startswith("op-" + "x" * 60 + "  ")


def test_network_line() -> None:
    line = network_line(STATUS)
    assert line == (
        "round 12  open tasks 3  finished 480  supply 1,000,000.0000  minted 12.0000"
        "  burned 1.5000  inflation 0.0123%"
    )

"""The allocation audit: chi-square p-values, its false-alarm rate on fair selection, a
biased selector caught in rounds.csv, the report and the status, auctions re-cleared."""

from __future__ import annotations

import csv
import math
import random
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_cli import LOCAL, NETWORK

import cluster.engine.market as market
from cluster.analysis.history import MarketSetup, replay_rounds
from cluster.cli import main
from cluster.config.schema import RunConfig
from cluster.engine.fairness import (
    ALPHA,
    RoundFairness,
    SelectionTally,
    assess_selection,
    bonferroni_drift,
    chi_square,
    chi_square_sf,
    largest_deviation,
    merge_cells,
    regularized_gamma_q,
    run_false_alarm,
    selection_probabilities,
    summarize,
)
from cluster.engine.status import RoundTally, fairness_lines
from cluster.runtime.runner import run_cluster
from protocol import TOKEN
from protocol.selection import compute_selection_draw, select_operators

# Longer rounds than test_cli's NETWORK (about 200 tasks each), so a bias has power.
BIG = NETWORK.replace("count: 120", "count: 600").replace("every_tasks: 20", "every_tasks: 200")
FAVOURED = "op-b"  # the smaller operator (about 0.4 of the stake)
BIAS = 0.3


# --- the statistics ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statistic", "df", "p"),
    [
        (3.841458820694124, 1, 0.05),
        (6.634896601021214, 1, 0.01),
        (10.827566170662733, 1, 0.001),
        (5.991464547107979, 2, 0.05),
        (13.815510557964274, 2, 0.001),
        (18.307038053275146, 10, 0.05),
        (124.34211340400407, 100, 0.05),
        (0.0, 3, 1.0),
    ],
)
def test_chi_square_sf_matches_the_tables(statistic: float, df: int, p: float) -> None:
    assert chi_square_sf(statistic, df) == pytest.approx(p, rel=1e-9)


def test_regularized_gamma_q_known_values() -> None:
    for x in (0.01, 0.5, 1.0, 3.0, 20.0, 200.0):
        assert regularized_gamma_q(1.0, x) == pytest.approx(math.exp(-x), rel=1e-12)
        assert regularized_gamma_q(0.5, x) == pytest.approx(math.erfc(math.sqrt(x)), rel=1e-10)
    # Q(n, x) = e^-x sum_{k<n} x^k / k! for integer n (the Poisson tail)
    for n, x in ((3, 2.5), (10, 4.0), (10, 25.0), (40, 35.0)):
        poisson = math.exp(-x) * sum(x**k / math.factorial(k) for k in range(n))
        assert regularized_gamma_q(n, x) == pytest.approx(poisson, rel=1e-10)
    assert regularized_gamma_q(2.0, 0.0) == 1.0 and regularized_gamma_q(2.0, math.inf) == 0.0
    with pytest.raises(ValueError, match="a: must be"):
        regularized_gamma_q(0.0, 1.0)
    with pytest.raises(ValueError, match="x: must be"):
        regularized_gamma_q(1.0, -1.0)


def test_chi_square_sf_matches_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(1)
    for _ in range(300):
        df = rng.randint(1, 60)
        x = rng.uniform(0.0, 4.0 * df + 20.0)
        assert chi_square_sf(x, df) == pytest.approx(stats.chi2.sf(x, df), rel=1e-8, abs=1e-300)


def test_chi_square_and_deviation_of_a_known_table() -> None:
    observed = {"a": 10, "b": 20, "c": 30}
    expected = {"a": 20.0, "b": 20.0, "c": 20.0}
    statistic, df = chi_square(observed, expected)
    assert (statistic, df) == (10.0, 2)
    r = assess_selection(4, observed, expected)
    assert r.p_value == pytest.approx(math.exp(-5.0))  # df 2: p = e^(-x/2)
    assert (r.round, r.tasks, r.df) == (4, 60, 2)
    assert r.max_dev_operator == "a" and r.max_dev == pytest.approx(-10 / math.sqrt(20))
    assert largest_deviation({"a": 5, "b": 9}, {"a": 5.0, "b": 4.0}) == ("b", 2.5)
    assert r.drifting(0.01) and not r.drifting(ALPHA)


def test_small_cells_are_merged_until_the_merged_one_reaches_5() -> None:
    observed = {"a": 1, "b": 3, "c": 12, "d": 30, "z": 0}
    expected = {"a": 2.0, "b": 2.0, "c": 10.0, "d": 30.0, "z": 0.0}
    assert merge_cells(observed, expected) == [(16, 14.0), (30, 30.0)]
    assert merge_cells(observed, {"a": 2.0, "c": 10.0, "d": 30.0, "e": 4.0}) == [
        (1 + 0, 6.0),
        (12, 10.0),
        (30, 30.0),
    ]
    assert chi_square({"a": 3, "b": 1}, {"a": 2.0, "b": 2.0}) == (0.0, 0)  # one cell: no test
    r = assess_selection(1, {"a": 3, "b": 1}, {"a": 2.0, "b": 2.0})
    assert not r.tested and r.tasks == 4 and r.max_dev is not None and not r.drifting()


def test_tasks_where_none_were_expected_are_a_certain_violation() -> None:
    r = assess_selection(2, {"a": 50, "x": 1}, {"a": 50.0, "b": 0.0})
    assert r.p_value == 0.0 and r.max_dev == math.inf and r.max_dev_operator == "x"
    assert assess_selection(3, {}, {"a": 1.0}) == RoundFairness(3)


def test_selection_probabilities_follow_the_engine() -> None:
    active = {"b": 300 * TOKEN, "a": 500 * TOKEN, "c": 200 * TOKEN}
    assert selection_probabilities(active, 1.0, 0.0) == {"a": 0.5, "b": 0.3, "c": 0.2}
    only = selection_probabilities(active, 0.5, 0.5, operators={"a", "b"})
    assert only == pytest.approx({"a": 0.5 * 5 / 8 + 0.25, "b": 0.5 * 3 / 8 + 0.25})


def test_run_false_alarm_and_bonferroni() -> None:
    assert run_false_alarm(ALPHA, 0) == 0.0
    assert run_false_alarm(ALPHA, 100) == pytest.approx(1 - 0.999**100)  # about 9.5 %
    assert bonferroni_drift([0.5, 0.0006], 0.001) is False  # 0.0006 >= 0.001 / 2
    assert bonferroni_drift([0.5, 0.0004, 0.9, 0.00001], 0.001) is True
    assert bonferroni_drift([], 0.001) is False


def fair_rounds(rounds: int, tasks: int, alpha: float) -> list[RoundFairness]:
    """Rounds of the real selector (blake2b draws) over five unequal operators."""
    names = ["o1", "o2", "o3", "o4", "o5"]
    stakes = [500 * TOKEN, 300 * TOKEN, 120 * TOKEN, 60 * TOKEN, 20 * TOKEN]
    probabilities = selection_probabilities(dict(zip(names, stakes, strict=True)), 0.9, 0.1)
    out = []
    for r in range(rounds):
        ids = range(r * tasks, (r + 1) * tasks)
        chosen = select_operators(names, stakes, ids, seed=11, w_stake=0.9, w_random=0.1)
        tally = SelectionTally()
        tally.add(probabilities, [c for c in chosen if c is not None])
        out.append(tally.assess(r + 1))
    return out


def test_a_fair_selector_warns_at_the_stated_rate() -> None:
    """2000 fair rounds at alpha 0.01: between 0.5 % and 2 % warn (binomial mean 1 %)."""
    alpha = 0.01
    rounds = fair_rounds(2000, 100, alpha)
    assert all(r.tested for r in rounds)
    rate = sum(r.drifting(alpha) for r in rounds) / len(rounds)
    assert 0.005 <= rate <= 0.02, rate
    # p-values of fair rounds are about uniform: a tenth below 0.1, half below 0.5
    ps = [r.p_value for r in rounds if r.p_value is not None]
    assert 0.07 <= sum(p < 0.1 for p in ps) / len(ps) <= 0.13
    assert 0.45 <= sum(p < 0.5 for p in ps) / len(ps) <= 0.55
    summary = summarize(rounds, alpha)
    assert summary.rounds_tested == 2000 and len(summary.rounds_drifting) == round(rate * 2000)
    assert summary.auction_checked is None and summary.auction_mismatches == 0


def test_a_biased_selection_trips_the_test() -> None:
    rng = random.Random(5)
    probabilities = {"a": 0.6, "b": 0.4}
    tally = SelectionTally()
    chosen = [
        "b" if rng.random() < BIAS else ("a" if rng.random() < 0.6 else "b") for _ in range(200)
    ]
    tally.add(probabilities, chosen)
    r = tally.assess(1)
    assert r.drifting() and r.max_dev_operator in {"a", "b"} and abs(r.max_dev or 0) > 3


# --- runs -------------------------------------------------------------------------------------


def read_rounds(out: Path) -> list[dict[str, str]]:
    with (out / "rounds.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def per_round(rows: list[dict[str, str]]) -> dict[int, dict[str, str]]:
    return {int(r["round"]): r for r in rows if r["role"] == "operator"}


def biased_selector(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give ``FAVOURED`` 30 % of the tasks on top of its stake-weighted share."""
    real = market.select_operators

    def select(operators: Any, stakes: Any, task_ids: Any, seed: int, **kw: Any) -> list:
        chosen = real(operators, stakes, task_ids, seed, **kw)
        return [
            FAVOURED if FAVOURED in operators and compute_selection_draw(seed + 1, t) < BIAS else c
            for c, t in zip(chosen, task_ids, strict=True)
        ]

    monkeypatch.setattr(market, "select_operators", select)


def test_an_honest_run_passes_the_audit(tmp_path: Path) -> None:
    """test_cli's NETWORK on --local: every auctioned assignment re-clears to itself, and
    no round's selection is below ALPHA (this seed's rounds; a fair round warns with
    probability ALPHA)."""
    config = tmp_path / "net.yaml"
    config.write_text(NETWORK)
    out = tmp_path / "run"
    assert main(["run", str(config), "--out", str(out), *LOCAL]) == 0
    rows = read_rounds(out)
    rounds = per_round(rows)
    assert all(r["auction_mismatches"] == "0" for r in rows)
    assert sum(int(r["auction_checked"]) for r in rounds.values()) > 0
    tested = [float(r["selection_p"]) for r in rounds.values() if r["selection_p"]]
    assert tested and min(tested) >= ALPHA
    selected = sum(int(r["selected"]) for r in rows)
    assert selected == sum(int(r["selection_tasks"]) for r in rounds.values())
    assert 0 < selected <= 120  # first assignments only: re-offered tasks are not counted again
    for r in rows:
        if r["role"] == "coprocessor":
            assert r["selected"] == "0" and r["expected_selected"] == "0.0"
    page = (out / "report.html").read_text()
    assert "<h2>Allocation fairness</h2>" in page and "Warning:" not in page


def test_a_biased_selector_trips_the_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    biased_selector(monkeypatch)
    config = tmp_path / "net.yaml"
    config.write_text(BIG)
    out = tmp_path / "run"
    assert main(["run", str(config), "--out", str(out), *LOCAL]) == 0
    capsys.readouterr()
    rounds = per_round(read_rounds(out))
    drifting = {
        n: r for n, r in rounds.items() if r["selection_p"] and float(r["selection_p"]) < ALPHA
    }
    assert drifting, {n: r["selection_p"] for n, r in rounds.items()}
    for r in drifting.values():
        assert r["selection_max_dev_operator"] in {"op-a", "op-b"}
    rows = [r for r in read_rounds(out) if r["participant"] == FAVOURED and r["selected"] != "0"]
    assert sum(int(r["selected"]) for r in rows) > 1.2 * sum(
        float(r["expected_selected"]) for r in rows
    )
    assert all(r["auction_mismatches"] == "0" for r in rounds.values())  # the auction was fair
    page = (out / "report.html").read_text()
    assert "Warning:" in page and "Allocation drifts from stake" in page


def test_the_live_status_shows_the_last_round_and_warns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    biased_selector(monkeypatch)
    config = RunConfig.model_validate(yaml.safe_load(BIG))
    result = run_cluster(config, tmp_path / "run", local=True, paced=False, progress=False)
    f = result.status["fairness"]
    assert f["rounds_tested"] >= 1 and f["rounds_drifting"] >= 1
    # The live tally and the replay agree on the last tested round.
    rounds = per_round(read_rounds(tmp_path / "run"))
    last = rounds[f["round"]]
    assert f["tasks"] == int(last["selection_tasks"])
    assert f["p_value"] == pytest.approx(float(last["selection_p"]), rel=1e-5)
    lines = fairness_lines(result.status)
    assert lines[0].startswith(f"allocation fairness: round {f['round']}, {f['tasks']} tasks")
    if f["drifting"]:
        assert lines[1].startswith("WARNING: allocation drifts from stake")


def test_fairness_lines() -> None:
    tally = RoundTally()
    assert fairness_lines({"fairness": tally.fairness_status()}) == [
        "allocation fairness: no round with selected tasks yet"
    ]
    tally.selection.add({"a": 0.5, "b": 0.5}, ["a"] * 90 + ["b"] * 10)
    tally.selection_round = 7
    tally.next_round()
    lines = fairness_lines({"fairness": tally.fairness_status()})
    assert lines[0].startswith("allocation fairness: round 7, 100 tasks selected, chi-square p =")
    assert (
        "largest deviation +5.66 sd (a)" in lines[0] and "1 of 1 rounds tested drifted" in lines[0]
    )
    assert lines[1].startswith("WARNING: allocation drifts from stake in round 7 (p = ")
    assert lines[1].endswith("a got 90 tasks, expected 50.0")
    tally.next_round()  # a round without selections keeps the last tested one
    assert tally.fairness is not None and tally.fairness.round == 7


def test_a_tampered_clearing_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A coordinator that pays its coprocessors one base unit more than the rule says (the
    audit re-clears with the engine's own, untampered rule)."""
    from cluster.engine import coordinator
    from cluster.engine.market import MarketEngine

    class Tampered(MarketEngine):
        def auction(self, *args: Any, **kw: Any) -> list[tuple[str, int] | None]:
            won = super().auction(*args, **kw)
            return [w if w is None else (w[0], w[1] - 1) for w in won]

    monkeypatch.setattr(coordinator, "MarketEngine", Tampered)
    config = tmp_path / "net.yaml"
    config.write_text(NETWORK)
    out = tmp_path / "run"
    assert main(["run", str(config), "--out", str(out), *LOCAL]) == 0
    rounds = per_round(read_rounds(out))
    checked = sum(int(r["auction_checked"]) for r in rounds.values())
    assert checked > 0
    assert sum(int(r["auction_mismatches"]) for r in rounds.values()) == checked
    assert "auctioned assignment(s) differ from the rule" in (out / "report.html").read_text()
    # Without config.json's pricing the check is skipped, not failed.
    _, rows = replay_rounds(out / "ledger", MarketSetup())
    assert all(r.auction_checked is None and r.auction_mismatches is None for r in rows)

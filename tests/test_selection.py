"""Operator selection (SPEC 6): determinism, frequencies, eligibility, batches, weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.selection import (
    compute_selection_draw,
    compute_selection_probabilities,
    select_operator,
    select_operators,
)

OPERATORS = ["a", "b", "c", "d", "e"]
STAKES = [500 * 10**18, 300 * 10**18, 150 * 10**18, 50 * 10**18, 0]


def chi2_critical(df: int, z: float = 3.719) -> float:
    """Upper chi-square quantile by Wilson-Hilferty; z = 3.719 is the normal 1e-4 tail."""
    h = 2.0 / (9.0 * df)
    return df * (1.0 - h + z * math.sqrt(h)) ** 3


def test_draw_is_deterministic_uniform_and_keyed() -> None:
    assert compute_selection_draw(7, 42) == compute_selection_draw(7, 42)
    assert compute_selection_draw(7, 42) != compute_selection_draw(8, 42)
    assert compute_selection_draw(7, 42) != compute_selection_draw(7, 43)
    assert compute_selection_draw(7, 5) != compute_selection_draw(7, "5")
    draws = [compute_selection_draw(1, t) for t in range(10_000)]
    assert all(0.0 <= u < 1.0 for u in draws)
    assert np.mean(draws) == pytest.approx(0.5, abs=0.02)


def test_selection_replays() -> None:
    first = [select_operator(OPERATORS, STAKES, t, seed=3) for t in range(200)]
    again = [select_operator(OPERATORS, STAKES, t, seed=3) for t in range(200)]
    assert first == again
    other = [select_operator(OPERATORS, STAKES, t, seed=4) for t in range(200)]
    assert first != other


def test_probabilities() -> None:
    probs = compute_selection_probabilities(STAKES, 0.7, 0.3)
    expected = [0.7 * s / sum(STAKES) + 0.3 / 5 for s in STAKES]
    assert probs == pytest.approx(expected)
    assert sum(probs) == pytest.approx(1.0)
    # Eligibility renormalises over the eligible.
    mask = [True, False, True, False, True]
    probs = compute_selection_probabilities(STAKES, 0.7, 0.3, mask)
    assert probs[1] == probs[3] == 0.0
    assert probs[0] == pytest.approx(0.7 * 500 / 650 + 0.1)
    assert sum(probs) == pytest.approx(1.0)
    # Zero eligible stake: uniform over the eligible; nobody eligible: all zero.
    assert compute_selection_probabilities([0, 0, 5], 1.0, 0.0, [True, True, False]) == [
        0.5,
        0.5,
        0.0,
    ]
    assert compute_selection_probabilities(STAKES, 1.0, 0.0, [False] * 5) == [0.0] * 5


@pytest.mark.parametrize("w_stake, w_random", [(1.0, 0.0), (0.7, 0.3), (0.0, 1.0)])
def test_frequencies_match_probabilities(w_stake: float, w_random: float) -> None:
    n = 40_000
    picks = select_operators(
        OPERATORS, STAKES, range(n), seed=2025, w_stake=w_stake, w_random=w_random
    )
    probs = compute_selection_probabilities(STAKES, w_stake, w_random)
    counts = {op: 0 for op in OPERATORS}
    for op in picks:
        counts[op] += 1
    cells = [(counts[op], p * n) for op, p in zip(OPERATORS, probs, strict=True)]
    for observed, expected in cells:
        if expected == 0:
            assert observed == 0
    used = [(o, e) for o, e in cells if e > 0]
    stat = sum((o - e) ** 2 / e for o, e in used)
    assert stat < chi2_critical(len(used) - 1)


def test_eligibility_masks() -> None:
    mask = [False, True, False, True, False]
    picks = {
        select_operator(OPERATORS, STAKES, t, seed=9, w_stake=0.5, w_random=0.5, eligible=mask)
        for t in range(500)
    }
    assert picks == {"b", "d"}
    # Zero stake and no random weight: never chosen while someone has stake.
    picks = {select_operator(OPERATORS, STAKES, t, seed=9) for t in range(2000)}
    assert "e" not in picks
    assert select_operator(OPERATORS, STAKES, 1, seed=9, eligible=[False] * 5) is None
    assert select_operators(OPERATORS, STAKES, [1, 2], seed=9, eligible=[False] * 5) == [
        None,
        None,
    ]
    # Only a zero-stake operator eligible: it gets everything (uniform fallback).
    only_e = [False, False, False, False, True]
    assert select_operator(OPERATORS, STAKES, 3, seed=9, eligible=only_e) == "e"


@given(
    stakes=st.lists(st.integers(0, 10**24), min_size=1, max_size=8),
    mask_bits=st.integers(0, 255),
    w_stake=st.sampled_from([0.0, 0.3, 0.7, 1.0]),
    seed=st.integers(0, 2**63),
    task_ids=st.lists(st.one_of(st.integers(0, 10**9), st.text(max_size=8)), max_size=20),
)
def test_batch_equals_per_task(
    stakes: list[int], mask_bits: int, w_stake: float, seed: int, task_ids: list[int | str]
) -> None:
    operators = [f"op{i}" for i in range(len(stakes))]
    mask = [bool(mask_bits >> i & 1) for i in range(len(stakes))]
    kwargs = {"w_stake": w_stake, "w_random": 1.0 - w_stake, "eligible": mask}
    batch = select_operators(operators, stakes, task_ids, seed, **kwargs)
    single = [select_operator(operators, stakes, t, seed, **kwargs) for t in task_ids]
    assert batch == single
    for op in batch:
        assert op is None or mask[operators.index(op)]


@pytest.mark.parametrize(
    "w_stake, w_random, field",
    [
        (0.7, 0.7, "w_random"),
        (-0.1, 1.1, "w_stake"),
        (1.1, -0.1, "w_random"),
        (0.5, 0.4, "w_random"),
        (math.nan, 1.0, "w_stake"),
    ],
)
def test_bad_weights_rejected(w_stake: float, w_random: float, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        select_operator(OPERATORS, STAKES, 1, seed=0, w_stake=w_stake, w_random=w_random)
    with pytest.raises(ValueError, match=field):
        compute_selection_probabilities(STAKES, w_stake, w_random)


def test_weights_within_tolerance_accepted() -> None:
    assert select_operator(OPERATORS, STAKES, 1, seed=0, w_stake=0.7, w_random=0.3 + 1e-12)


def test_mismatched_lengths_rejected() -> None:
    with pytest.raises(ValueError, match="stakes"):
        select_operator(OPERATORS, STAKES[:2], 1, seed=0)
    with pytest.raises(ValueError, match="eligible"):
        select_operator(OPERATORS, STAKES, 1, seed=0, eligible=[True])
    with pytest.raises(ValueError, match="stakes"):
        compute_selection_probabilities([-1, 2], 1.0, 0.0)

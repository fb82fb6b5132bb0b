"""Stake-weighted operator selection (SPEC section 6), replayable from (seed, task id).

A task goes to eligible operator ``i`` (active, with free capacity) with
probability ``w_stake * stake_i / total + w_random / N``, where ``total`` and
``N`` are the eligible operators' stake and count. The draw is a uniform
number derived from ``blake2b(seed, task id)``, not from Python's ``hash()``
(salted per process) nor from a shared generator (whose state would depend
on the order tasks are handled), so each task's choice replays on its own.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

WEIGHT_TOLERANCE: float = 1e-9
_PERSON = b"stakeray-select"  # blake2b personalisation: these draws are for selection only


def check_selection_weights(w_stake: float, w_random: float) -> None:
    """Refuse negative weights or weights not summing to 1 (as go-livepeer does)."""
    for name, value in (("w_stake", w_stake), ("w_random", w_random)):
        if not math.isfinite(value) or value < 0.0:
            raise ValueError(f"{name}: must be finite and >= 0, got {value!r}")
    if abs(w_stake + w_random - 1.0) > WEIGHT_TOLERANCE:
        raise ValueError(f"w_random: w_stake + w_random must be 1, got {w_stake + w_random!r}")


def compute_selection_probabilities(
    stakes: Sequence[int],
    w_stake: float,
    w_random: float,
    eligible: Sequence[bool] | None = None,
) -> list[float]:
    """Return each operator's chance ``w_stake * stake/total + w_random / N`` over the eligible.

    Ineligible operators get 0. With zero eligible stake the stake term has
    nothing to weigh, so the whole mass is uniform; with nobody eligible,
    all are 0.
    """
    check_selection_weights(w_stake, w_random)
    if eligible is not None and len(eligible) != len(stakes):
        raise ValueError("eligible: must have one entry per operator")
    mask = [True] * len(stakes) if eligible is None else [bool(e) for e in eligible]
    if any(s < 0 for s in stakes):
        raise ValueError("stakes: must be >= 0")
    count = sum(mask)
    if count == 0:
        return [0.0] * len(stakes)
    # Stakes are base-unit ints (beyond int64): sum and divide as Python ints.
    total = sum(s for s, m in zip(stakes, mask, strict=True) if m)
    if total == 0:
        return [1.0 / count if m else 0.0 for m in mask]
    return [
        w_stake * (s / total) + w_random / count if m else 0.0
        for s, m in zip(stakes, mask, strict=True)
    ]


def compute_selection_draw(seed: int, task_id: int | str) -> float:
    """Return a uniform draw in ``[0, 1)`` determined by ``(seed, task_id)`` alone.

    The draw is BLAKE2b of ``"{seed}|{tag}|{task_id}"``; the type tag keeps task
    5 and task "5" apart.
    """
    tag = "i" if isinstance(task_id, int) else "s"
    hasher = _prefix_hasher(int(seed), tag).copy()  # the prefix is hashed once per seed
    hasher.update(str(task_id).encode())
    # The top 53 bits make an exactly representable float in [0, 1).
    return (int.from_bytes(hasher.digest(), "big") >> 11) * 2.0**-53


@functools.lru_cache(maxsize=64)
def _prefix_hasher(seed: int, tag: str) -> Any:
    return hashlib.blake2b(f"{seed}|{tag}|".encode(), digest_size=8, person=_PERSON)


def _pick(cumulative: npt.NDArray[np.float64], last: int, draws: npt.ArrayLike) -> npt.NDArray:
    """Return, per draw ``u``, the first index whose cumulative probability exceeds ``u``."""
    # A draw above a cumulative sum that rounding left short of 1 goes to the
    # last eligible operator, never to a zero-probability one after it.
    return np.minimum(np.searchsorted(cumulative, draws, side="right"), last)


def select_operators(
    operators: Sequence[str],
    stakes: Sequence[int],
    task_ids: Sequence[int | str],
    seed: int,
    *,
    w_stake: float = 1.0,
    w_random: float = 0.0,
    eligible: Sequence[bool] | None = None,
) -> list[str | None]:
    """Select an operator for each task (SPEC 6); equal to :func:`select_operator` per task.

    Eligibility is fixed for the batch: when an assignment fills an
    operator, the caller recomputes ``eligible`` and selects the rest anew.
    """
    if len(operators) != len(stakes):
        raise ValueError("stakes: must have one entry per operator")
    probs = compute_selection_probabilities(stakes, w_stake, w_random, eligible)
    positive = [i for i, p in enumerate(probs) if p > 0.0]
    if not positive:
        return [None] * len(task_ids)
    cumulative = np.cumsum(np.asarray(probs, dtype=np.float64))
    draws = np.fromiter(
        (compute_selection_draw(seed, t) for t in task_ids), dtype=np.float64, count=len(task_ids)
    )
    return [operators[i] for i in _pick(cumulative, positive[-1], draws).tolist()]


def select_operator(
    operators: Sequence[str],
    stakes: Sequence[int],
    task_id: int | str,
    seed: int,
    *,
    w_stake: float = 1.0,
    w_random: float = 0.0,
    eligible: Sequence[bool] | None = None,
) -> str | None:
    """Return the operator that gets ``task_id`` (SPEC 6), or None if nobody is eligible."""
    return select_operators(
        operators,
        stakes,
        [task_id],
        seed,
        w_stake=w_stake,
        w_random=w_random,
        eligible=eligible,
    )[0]

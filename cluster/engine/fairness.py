"""Fairness audit of allocation: does each round's operator choice follow stake?

Pure statistics (no I/O, no Ray); the replay (:mod:`cluster.analysis.history`,
``rounds.csv``), the live status (:mod:`cluster.engine.status`) and the run
report use it alike.

**Selection.** Each new task goes to active operator ``i`` with probability
``p_i = w_stake * stake_i / total + w_random / N`` over the round's frozen
stakes (:func:`protocol.selection.compute_selection_probabilities`), one
independent draw per task, so a round's counts of first assignments are
multinomial with expected counts ``E_i = sum over batches of n_b * p_i``.
Pearson's statistic ``X^2 = sum (O - E)^2 / E`` is compared with the
chi-square distribution on ``cells - 1`` degrees of freedom.

*Small cells.* The chi-square approximation needs expected counts of about 5
or more, so cells with ``E < 5`` are merged into one (observed and expected
summed); while that merged cell is still below 5, the smallest remaining
cell joins it. A round with fewer than two cells left (too few tasks) is not
tested (``p_value`` None). An operator given tasks with ``E = 0`` (outside
the selectable set, or zero probability) is a certain violation: ``p = 0``.

*Largest deviation.* ``(O - E) / sqrt(E)`` per operator (before merging),
the one of largest magnitude, signed, with its operator.

*False alarms.* A round warns when ``p < alpha`` (:data:`ALPHA`, 0.001): a
fair round warns with probability ``alpha``, and a fair run of ``R`` tested
rounds warns at least once with probability ``1 - (1 - alpha)^R``
(:func:`run_false_alarm`; about ``R * alpha`` when small: 1 % for 10 rounds,
10 % for 100). To hold the whole run to ``alpha`` instead, compare the
smallest p with ``alpha / R`` (Bonferroni, :func:`bonferroni_drift`), which
the report shows beside the per-round count.

**Auction.** Clearing is deterministic given the book, so each auctioned
assignment can be re-cleared; a mismatch is a certain violation (its
"p-value" is 0, see :attr:`RoundFairness.auction_p`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from protocol.selection import compute_selection_probabilities

ALPHA = 0.001
"""Per-round false-alarm rate: a round warns when its selection p-value is below it."""

MIN_EXPECTED = 5.0
"""Cells expected to get fewer tasks than this are merged (the chi-square approximation)."""

_EPS = 1e-15
_TINY = 1e-300
_MAX_ITERATIONS = 10_000


# --- the chi-square distribution ------------------------------------------------------------


def regularized_gamma_q(a: float, x: float) -> float:
    """Return ``Q(a, x) = Gamma(a, x) / Gamma(a)``, the regularized upper incomplete gamma.

    The series of ``P = 1 - Q`` for ``x < a + 1``, Lentz's continued fraction of
    ``Q`` beyond (Numerical Recipes 6.2); relative error about 1e-14.
    """
    if a <= 0.0 or not math.isfinite(a):
        raise ValueError(f"a: must be finite and > 0, got {a!r}")
    if x < 0.0 or math.isnan(x):
        raise ValueError(f"x: must be >= 0, got {x!r}")
    if x == 0.0:
        return 1.0
    if math.isinf(x):
        return 0.0
    log_prefix = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1.0:
        term = total = 1.0 / a
        denominator = a
        for _ in range(_MAX_ITERATIONS):
            denominator += 1.0
            term *= x / denominator
            total += term
            if abs(term) < abs(total) * _EPS:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefix))
    b = x + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    h = d
    for i in range(1, _MAX_ITERATIONS):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = _TINY if abs(d) < _TINY else d
        c = b + an / c
        c = _TINY if abs(c) < _TINY else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return math.exp(log_prefix) * h


def chi_square_sf(statistic: float, df: int) -> float:
    """Return ``P(X >= statistic)`` for ``X`` chi-square with ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError(f"df: must be >= 1, got {df!r}")
    if statistic <= 0.0:
        return 1.0
    return regularized_gamma_q(df / 2.0, statistic / 2.0)


# --- one round's test -----------------------------------------------------------------------


def selection_probabilities(
    active: Mapping[str, int],
    w_stake: float,
    w_random: float,
    operators: Collection[str] | None = None,
) -> dict[str, float]:
    """Return each selectable operator's chance per task, as the market engine draws it:
    the active set (frozen stakes), limited to ``operators`` when given, in name order."""
    names = sorted(n for n in active if operators is None or n in operators)
    probs = compute_selection_probabilities([active[n] for n in names], w_stake, w_random)
    return dict(zip(names, probs, strict=True))


def expected_counts(n: int, probabilities: Mapping[str, float]) -> dict[str, float]:
    """Return ``n * p_i`` per operator."""
    return {name: n * p for name, p in probabilities.items()}


def merge_cells(
    observed: Mapping[str, int],
    expected: Mapping[str, float],
    min_expected: float = MIN_EXPECTED,
) -> list[tuple[int, float]]:
    """Return the ``(observed, expected)`` cells to test, small ones merged (module docstring).

    Cells with ``E = 0`` are left out (the caller handles observed tasks there).
    """
    cells = sorted(
        ((observed.get(n, 0), e) for n, e in expected.items() if e > 0.0),
        key=lambda cell: cell[1],
    )
    big = [cell for cell in cells if cell[1] >= min_expected]
    small = [cell for cell in cells if cell[1] < min_expected]
    if not small:
        return big
    merged = (sum(o for o, _ in small), sum(e for _, e in small))
    while merged[1] < min_expected and big:
        o, e = big.pop(0)  # the smallest remaining cell joins the merged one
        merged = (merged[0] + o, merged[1] + e)
    return [merged, *big]


def chi_square(
    observed: Mapping[str, int],
    expected: Mapping[str, float],
    min_expected: float = MIN_EXPECTED,
) -> tuple[float, int]:
    """Return Pearson's statistic and its degrees of freedom (cells - 1) after merging;
    ``(0.0, 0)`` when fewer than two cells remain (nothing to test)."""
    cells = merge_cells(observed, expected, min_expected)
    if len(cells) < 2:
        return 0.0, 0
    return sum((o - e) ** 2 / e for o, e in cells), len(cells) - 1


def largest_deviation(
    observed: Mapping[str, int], expected: Mapping[str, float]
) -> tuple[str, float] | None:
    """Return the operator with the largest ``|O - E| / sqrt(E)`` and that signed value
    (``inf`` for tasks where ``E = 0``); None without operators to compare. Ties go to
    the first name."""
    best: tuple[str, float] | None = None
    for name in sorted({*observed, *expected}):
        o, e = observed.get(name, 0), expected.get(name, 0.0)
        if e > 0.0:
            z = (o - e) / math.sqrt(e)
        elif o > 0:
            z = math.inf
        else:
            continue
        if best is None or abs(z) > abs(best[1]):
            best = (name, z)
    return best


@dataclass(frozen=True, slots=True)
class RoundFairness:
    """One round's allocation audit: the selection test and the auction re-clearing."""

    round: int
    tasks: int = 0  # first assignments tested (re-offered tasks keep their operator)
    statistic: float | None = None  # Pearson's X^2 after merging small cells
    df: int = 0
    p_value: float | None = None  # None: not tested (too few tasks for two cells)
    max_dev: float | None = None  # signed (O - E) / sqrt(E) of largest magnitude
    max_dev_operator: str = ""
    auction_checked: int | None = None  # auctioned assignments re-cleared; None: no check
    auction_mismatches: int | None = None

    @property
    def tested(self) -> bool:
        return self.p_value is not None

    def drifting(self, alpha: float = ALPHA) -> bool:
        """Whether this round's selection departs from stake at level ``alpha``."""
        return self.p_value is not None and self.p_value < alpha

    @property
    def auction_p(self) -> float | None:
        """0 when any auctioned assignment differs from the clearing rule, else 1 (None: not
        checked): the rule is deterministic, so a mismatch is certain."""
        if not self.auction_checked or self.auction_mismatches is None:
            return None
        return 0.0 if self.auction_mismatches else 1.0


def assess_selection(
    round_: int,
    observed: Mapping[str, int],
    expected: Mapping[str, float],
    *,
    min_expected: float = MIN_EXPECTED,
    auction_checked: int | None = None,
    auction_mismatches: int | None = None,
) -> RoundFairness:
    """Test one round's first assignments ``observed`` against ``expected`` (module docstring)."""
    tasks = sum(observed.values())
    deviation = largest_deviation(observed, expected)
    name, z = deviation if deviation is not None else ("", None)
    base = RoundFairness(
        round_,
        tasks,
        max_dev=z,
        max_dev_operator=name,
        auction_checked=auction_checked,
        auction_mismatches=auction_mismatches,
    )
    if tasks == 0:
        return RoundFairness(
            round_, auction_checked=auction_checked, auction_mismatches=auction_mismatches
        )
    if any(o > 0 and expected.get(n, 0.0) <= 0.0 for n, o in observed.items()):
        return replace(base, statistic=math.inf, p_value=0.0)
    statistic, df = chi_square(observed, expected, min_expected)
    if df == 0:
        return base
    return replace(base, statistic=statistic, df=df, p_value=chi_square_sf(statistic, df))


@dataclass
class SelectionTally:
    """One round's first assignments and their expected counts, batch by batch (O(active)
    per batch plus O(1) per task)."""

    observed: Counter[str] = field(default_factory=Counter)
    expected: dict[str, float] = field(default_factory=dict)

    def add(self, probabilities: Mapping[str, float], chosen: Iterable[str]) -> None:
        """Count one batch: the operators ``chosen`` for its new tasks, each drawn with
        ``probabilities``."""
        before = self.observed.total()
        self.observed.update(chosen)
        n = self.observed.total() - before
        if n:
            for name, p in probabilities.items():
                self.expected[name] = self.expected.get(name, 0.0) + n * p

    def assess(
        self,
        round_: int,
        auction_checked: int | None = None,
        auction_mismatches: int | None = None,
    ) -> RoundFairness:
        """Test the round counted so far (:func:`assess_selection`)."""
        return assess_selection(
            round_,
            self.observed,
            self.expected,
            auction_checked=auction_checked,
            auction_mismatches=auction_mismatches,
        )


# --- a whole run ----------------------------------------------------------------------------


def run_false_alarm(alpha: float, rounds: int) -> float:
    """Chance that a fair run of ``rounds`` tested rounds warns at least once."""
    return 1.0 - (1.0 - alpha) ** rounds


def bonferroni_drift(p_values: Sequence[float], alpha: float = ALPHA) -> bool:
    """Whether the smallest p-value is below ``alpha / rounds`` (the run held to ``alpha``)."""
    return bool(p_values) and min(p_values) < alpha / len(p_values)


@dataclass(frozen=True, slots=True)
class FairnessSummary:
    """A run's allocation audit: what the report's "Allocation fairness" table shows."""

    alpha: float
    rounds_tested: int
    rounds_drifting: list[int]  # rounds with p < alpha
    min_p: float | None
    min_p_round: int | None
    max_dev: float | None
    max_dev_operator: str
    max_dev_round: int | None
    auction_checked: int | None  # None: the check could not run (no pricing)
    auction_mismatches: int
    bonferroni: bool  # min p < alpha / rounds_tested

    @property
    def drifting(self) -> bool:
        return bool(self.rounds_drifting) or self.auction_mismatches > 0

    @property
    def false_alarm(self) -> float:
        """Chance a fair run of this many tested rounds warns at least once."""
        return run_false_alarm(self.alpha, self.rounds_tested)


def summarize(rounds: Iterable[RoundFairness], alpha: float = ALPHA) -> FairnessSummary:
    """Fold the rounds' audits into one summary."""
    tested = list(rounds)
    with_p = [r for r in tested if r.p_value is not None]
    lowest = min(with_p, key=lambda r: (r.p_value, r.round), default=None)
    devs = [r for r in tested if r.max_dev is not None and r.tasks]
    widest = max(devs, key=lambda r: abs(r.max_dev or 0.0), default=None)
    checked = [r.auction_checked for r in tested if r.auction_checked is not None]
    return FairnessSummary(
        alpha=alpha,
        rounds_tested=len(with_p),
        rounds_drifting=[r.round for r in with_p if r.drifting(alpha)],
        min_p=None if lowest is None else lowest.p_value,
        min_p_round=None if lowest is None else lowest.round,
        max_dev=None if widest is None else widest.max_dev,
        max_dev_operator="" if widest is None else widest.max_dev_operator,
        max_dev_round=None if widest is None else widest.round,
        auction_checked=sum(checked) if checked else None,
        auction_mismatches=sum(r.auction_mismatches or 0 for r in tested),
        bonferroni=bonferroni_drift([r.p_value for r in with_p if r.p_value is not None], alpha),
    )

"""GAS reputation (SPEC section 8): a Bernoulli-logit generalized autoregressive score.

Each coprocessor and operator carries a log-odds ``f`` of success (a float:
reputation is not money); its reputation is ``sigmoid(f)``. After a round in
which ``n`` of its tasks were observed and ``k`` succeeded, with
``p = sigmoid(f)``::

    f <- omega + beta * f + alpha * (k - n*p) / sqrt(n*p*(1-p))

The last term is the Binomial score ``k - n*p`` scaled by the inverse square
root of its Fisher information ``n*p*(1-p)``, so it is a standardised
surprise: a success at ``p = 0.95`` moves ``f`` little, a failure there
moves it a lot. With ``0 <= beta < 1`` ``f`` reverts to ``omega / (1 - beta)``.

Choice (the paper and SPEC are silent): a round with ``n == 0`` observes
nothing, so its score is 0 and only the decay ``omega + beta * f`` applies;
an idle account drifts slowly towards the long-run level instead of keeping
its record for ever.
"""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

# p is kept inside [P_EPS, 1 - P_EPS] so the scaled score stays finite at f = +-inf-ish.
P_EPS: float = 1e-9

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class GasParams(BaseModel):
    """The GAS recursion's constants (SPEC 8); the defaults are worked out below.

    - ``omega = 0.03`` and ``beta = 0.99``: the long-run log-odds is
      ``omega / (1 - beta) = 3.0``, i.e. reputation ``sigmoid(3) = 0.953``:
      high but below 1, so an idle account neither keeps a perfect record
      nor loses a good one quickly; the gap to it halves every
      ``ln 2 / 0.01 = 69`` idle rounds.
    - ``alpha = 0.2``: a newcomer that succeeds at every task, observed one
      per round, reaches reputation 0.9 after 15 tasks (0.95 after 27, and
      0.988 after 100); a single success at ``p`` adds ``0.2 * sqrt((1-p)/p)``.
    - ``initial_f = 0.5``: a newcomer starts at ``sigmoid(0.5) = 0.622``,
      just above the 0.5 eligibility floor, so a faulty newcomer falls below
      0.5 after 3 failures; an established one at 0.953 falls below 0.5
      after 8 consecutive failures (each failure at ``p`` subtracts
      ``0.2 * sqrt(p/(1-p))``, which is large exactly when ``p`` is high).

    With ``n`` tasks in one round the step grows like ``sqrt(n)``, as the
    formula prescribes: n agreeing observations are a stronger surprise.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    omega: FiniteFloat = 0.03
    alpha: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] = 0.2
    beta: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.99
    initial_f: FiniteFloat = 0.5


def sigmoid(f: float) -> float:
    """Return ``1 / (1 + exp(-f))`` without overflow for large ``|f|``."""
    if f >= 0:
        return 1.0 / (1.0 + math.exp(-f))
    z = math.exp(f)
    return z / (1.0 + z)


def logit(p: float) -> float:
    """Return ``log(p / (1 - p))`` with ``p`` clipped into ``[P_EPS, 1 - P_EPS]``."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p: must be in [0, 1], got {p!r}")
    p = min(max(p, P_EPS), 1.0 - P_EPS)
    return math.log(p / (1.0 - p))


def compute_reputation(f: float) -> float:
    """Return the reputation ``sigmoid(f)`` of log-odds ``f`` (SPEC 8)."""
    return sigmoid(f)


def compute_scaled_score(f: float, n: int, k: int) -> float:
    """Return ``(k - n*p) / sqrt(n*p*(1-p))`` with ``p = sigmoid(f)`` clipped; 0 when ``n == 0``."""
    if n < 0 or not 0 <= k <= n:
        raise ValueError(f"k: need 0 <= k <= n, got n={n!r}, k={k!r}")
    if n == 0:
        return 0.0
    p = min(max(sigmoid(f), P_EPS), 1.0 - P_EPS)
    return (k - n * p) / math.sqrt(n * p * (1.0 - p))


def compute_gas_update(f: float, n: int, k: int, params: GasParams) -> float:
    """Return the next log-odds after ``k`` successes in ``n`` observed tasks (SPEC 8)."""
    return params.omega + params.beta * f + params.alpha * compute_scaled_score(f, n, k)


def compute_long_run_log_odds(params: GasParams) -> float:
    """Return ``omega / (1 - beta)``, the fixed point of the decay."""
    return params.omega / (1.0 - params.beta)


def compute_long_run_reputation(params: GasParams) -> float:
    """Return ``sigmoid(omega / (1 - beta))``, where an unobserved reputation settles."""
    return sigmoid(compute_long_run_log_odds(params))

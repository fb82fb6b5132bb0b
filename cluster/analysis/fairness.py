"""The allocation audit's statistics for the analysis layer: :mod:`cluster.engine.fairness`.

The pure module lives in the engine layer because the live coordinator's status
(:mod:`cluster.engine.status`) tests each round with it, and the engine may not
import the analysis layer (tests/test_layering.py); this name re-exports it.
"""

from cluster.engine.fairness import (
    ALPHA,
    MIN_EXPECTED,
    FairnessSummary,
    RoundFairness,
    SelectionTally,
    assess_selection,
    bonferroni_drift,
    chi_square,
    chi_square_sf,
    expected_counts,
    largest_deviation,
    merge_cells,
    regularized_gamma_q,
    run_false_alarm,
    selection_probabilities,
    summarize,
)

__all__ = [
    "ALPHA",
    "MIN_EXPECTED",
    "FairnessSummary",
    "RoundFairness",
    "SelectionTally",
    "assess_selection",
    "bonferroni_drift",
    "chi_square",
    "chi_square_sf",
    "expected_counts",
    "largest_deviation",
    "merge_cells",
    "regularized_gamma_q",
    "run_false_alarm",
    "selection_probabilities",
    "summarize",
]

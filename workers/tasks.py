"""Public entry points: make inputs, execute (optionally faulty), verify."""

from __future__ import annotations

import time
from typing import Any

from workers import rng as rngs
from workers.registry import REGISTRY
from workers.spec import FaultConfig, TaskSpec


def make_inputs(spec: TaskSpec) -> Any:
    """The task's inputs, a pure function of ``spec`` (seeded PCG64)."""
    return REGISTRY[spec.kind].make_inputs(spec)


def fault_drawn(spec: TaskSpec, fault: FaultConfig | None) -> bool:
    """Whether ``fault`` strikes this spec: probability ``fault.rate``, fixed by both seeds."""
    if fault is None or fault.rate <= 0.0:
        return False
    return bool(rngs.seeded(spec.seed, fault.seed, rngs.FAULT_DRAW).random() < fault.rate)


def execute(
    spec: TaskSpec,
    inputs: Any = None,
    faulty: bool = False,
    fault: FaultConfig | None = None,
) -> Any:
    """Run the task; wrong (and ``fault.late_s`` late) if ``faulty`` or if the fault strikes."""
    kind = REGISTRY[spec.kind]
    if inputs is None:
        inputs = kind.make_inputs(spec)
    result = kind.execute(spec, inputs)
    if not (faulty or fault_drawn(spec, fault)):
        return result
    fault_seed = fault.seed if fault is not None else 0
    wrong = kind.corrupt(spec, result, rngs.seeded(spec.seed, fault_seed, rngs.FAULT_WHERE))
    if fault is not None and fault.late_s > 0:
        time.sleep(fault.late_s)
    return wrong


def verify(spec: TaskSpec, result: Any, inputs: Any = None) -> bool:
    """True iff ``result`` passes the kind's cheap check; never raises for a malformed result."""
    kind = REGISTRY[spec.kind]
    if inputs is None:
        inputs = kind.make_inputs(spec)
    try:
        return bool(kind.verify(spec, result, inputs))
    except Exception:  # a malformed result is a wrong result, whatever it trips over
        return False

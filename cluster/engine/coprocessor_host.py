"""A coprocessor host: one executor (CuPy on a GPU, NumPy otherwise) shared by its coprocessors."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import Any

from cluster.config.schema import CoprocessorConfig
from cluster.engine.execution import Execution, RealExecution
from cluster.engine.messages import Job
from workers.backend import get_xp

log = logging.getLogger("stakeray.coprocessor")


class CoprocessorHost:
    """Executes job batches for the coprocessors it hosts; returns results in job order."""

    def __init__(
        self,
        index: int,
        coprocessors: Sequence[CoprocessorConfig],
        seed: int = 0,
        execution: Execution | None = None,
    ) -> None:
        self.index = index
        self.names = [c.name for c in coprocessors]
        self.execution = execution if execution is not None else RealExecution(coprocessors, seed)
        self.backend = get_xp().__name__
        self.executed = 0
        self.busy_s = 0.0
        log.info("coprocessor host %d: %s for %s", index, self.backend, ", ".join(self.names))

    def info(self) -> dict[str, Any]:
        """Where this host runs: backend, process and devices (Ray's actor adds node and GPUs)."""
        return {
            "index": self.index,
            "coprocessors": self.names,
            "backend": self.backend,
            "pid": os.getpid(),
            "node_id": "",
            "gpu_ids": [],
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
            "executed": self.executed,
            "busy_s": round(self.busy_s, 3),
        }

    def execute(self, jobs: Sequence[Job]) -> list[Any]:
        """Run every job (faulty coprocessors return wrong results at their rate)."""
        started = time.perf_counter()
        results = [self.execution.run(job) for job in jobs]
        self.executed += len(jobs)
        self.busy_s += time.perf_counter() - started
        return results

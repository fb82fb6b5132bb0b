"""A sweep on Ray: each sweep point and seed of ``stakeray simulate`` is one Ray task.

``run_experiment`` (``cluster.analysis``, no Ray) takes a ``runner``; this
module's :class:`RaySweep` is one. It submits ``simulate_point(config, name,
value, seed)`` as ``ray.remote(num_cpus=1)`` tasks, at most ``workers`` in
flight, and yields each result as it comes back (``ray.wait``); the driver
writes the point's files at once and puts the rows back in sweep order, so the
outputs are the same bytes as a serial run's. :func:`ray_sweep` starts an
embedded Ray with ``workers`` CPUs, or joins ``--address`` / ``RAY_ADDRESS``,
or uses the cluster this process already joined (tests).

On a cluster of several machines every node needs stakeray installed (the
tasks import ``cluster.analysis.simulate``); the files are written by the
driver only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from cluster.analysis.simulate import ExperimentConfig, PointResult, Run, simulate_point
from cluster.runtime.errors import RunError
from cluster.runtime.runner import ray_joined
from protocol.errors import StakerayError

_remote: Any = None


def remote_point() -> Any:
    """Return ``simulate_point`` as a Ray task of one CPU (made once per process).

    The task is the analysis function itself, so a worker imports only
    ``cluster.analysis.simulate`` (not this module and the rest of the runtime).
    """
    global _remote
    if _remote is None:
        import ray

        _remote = ray.remote(num_cpus=1)(simulate_point)
    return _remote


@dataclass
class RaySweep:
    """Run a sweep's points on the Ray this process has joined, ``workers`` at a time."""

    workers: int

    def __call__(
        self, config: ExperimentConfig, runs: list[Run]
    ) -> Iterator[tuple[int, PointResult]]:
        import ray

        task = remote_point()
        config_ref = ray.put(config)  # stored once, not once per task
        queue = iter(enumerate(runs))
        in_flight: dict[Any, int] = {}
        try:
            while True:
                for i, (name, value, seed) in queue:
                    in_flight[task.remote(config_ref, name, value, seed, None)] = i
                    if len(in_flight) >= self.workers:
                        break
                if not in_flight:
                    return
                refs = list(in_flight)
                ready, rest = ray.wait(refs, num_returns=1)
                if rest:  # take every other one already done too
                    more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
                    ready += more
                order = [in_flight.pop(ref) for ref in ready]
                for i, result in zip(order, fetch(ready, [runs[i] for i in order]), strict=True):
                    yield i, result
        finally:
            for ref in in_flight:  # interrupted, or a point failed: stop the rest
                ray.cancel(ref, force=True)


def fetch(refs: list[Any], runs: list[Run]) -> list[PointResult]:
    """``ray.get`` the finished points in one call; a failure names its point in one line."""
    import ray
    from ray.exceptions import RayError, RayTaskError

    try:
        return list(ray.get(refs))
    except RayError:
        pass
    for ref, (name, value, seed) in zip(refs, runs, strict=True):  # which one failed
        try:
            ray.get(ref)
        except RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, StakerayError):  # the rules' own one-line refusal
                what = str(cause)
            elif cause is not None:
                what = f"{type(cause).__name__}: {cause}"
            else:
                what = str(exc)
            raise RunError(f"point {name}={value} seed {seed}: {what}".splitlines()[0]) from exc
        except RayError as exc:
            first = str(exc).strip().splitlines()[:1]
            raise RunError(
                f"point {name}={value} seed {seed}: Ray: {type(exc).__name__}"
                + (f": {first[0]}" if first else "")
            ) from exc
    raise RunError("sweep: a Ray task failed")  # unreachable: one ref above raised


@contextmanager
def ray_sweep(workers: int | None = None, address: str | None = None) -> Iterator[RaySweep]:
    """Join Ray (see :func:`cluster.runtime.runner.ray_joined`) for one sweep.

    Embedded: a local Ray with ``workers`` CPUs (default: this machine's). On a
    cluster: ``workers`` tasks in flight (default: the cluster's CPUs).
    """
    if workers is not None and workers < 1:
        raise RunError(f"--workers: must be at least 1, got {workers}")
    # Ray starts its workers at niceness 15; a sweep's workers are its whole work (as the
    # command's own process is without --workers), so an embedded Ray runs them at 0.
    with ray_joined(address, num_cpus=workers, system_config={"worker_niceness": 0}):
        import ray

        if workers is None:
            workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        yield RaySweep(workers)

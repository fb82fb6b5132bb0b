"""Which Ray node runs what: the coordinator's node holds the run directory.

The coordinator writes the ledger on its own node's disk, so every other
file of the run directory (``tasks.csv``, ``rounds.csv``, ``summary.json``,
the report) is written on that node too: :func:`on_node` runs the writer
there as a Ray task when the caller is elsewhere (a laptop driver, a worker
node), and in the caller's process when it is already there or without Ray.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def current_node_id() -> str | None:
    """Return this process's Ray node id, or None outside Ray."""
    try:
        import ray
    except ImportError:
        return None
    if not ray.is_initialized():
        return None
    return str(ray.get_runtime_context().get_node_id())


def pinned_here() -> dict[str, Any]:
    """Return Ray options that keep an actor on this process's node (and off every other)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node = current_node_id()
    if node is None:
        return {}
    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node, soft=False)}


def on_node(node_id: str | None, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` on the Ray node ``node_id`` and return its result."""
    if node_id is None or node_id == current_node_id():
        return fn(*args)
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    task = ray.remote(fn).options(
        num_cpus=0,
        max_retries=0,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
    )
    return ray.get(task.remote(*args))

"""How the pipeline's parts call each other: Ray actors, or plain objects in one process.

Every actor is a plain class; a :class:`Transport` is the only place that
knows whether a handle is a Ray actor (``cluster.runtime.transport``) or the
plain object itself (:class:`LocalTransport`: a call runs at once). So the
whole pipeline runs without Ray for tests and simulation, and with Ray
unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class HostLost(Exception):
    """An actor died, restarted mid-call or did not answer in time."""


class Transport(Protocol):
    def call(self, handle: Any, method: str, *args: Any) -> Any: ...

    def wait(
        self, futures: Sequence[Any], num_returns: int, timeout: float | None
    ) -> tuple[list[Any], list[Any]]: ...

    def get(self, future: Any, timeout: float | None = None) -> Any: ...


@dataclass(slots=True, eq=False)
class Done:
    """A local call's outcome: its value, or the exception it raised."""

    value: Any = None
    error: BaseException | None = None


class LocalTransport:
    """Calls plain objects directly; futures are already done."""

    def call(self, handle: Any, method: str, *args: Any) -> Done:
        try:
            resolved = [self.get(a) if isinstance(a, Done) else a for a in args]
            return Done(getattr(handle, method)(*resolved))
        except Exception as exc:  # kept and raised at get(), as Ray does
            return Done(error=exc)

    def wait(
        self, futures: Sequence[Any], num_returns: int, timeout: float | None
    ) -> tuple[list[Any], list[Any]]:
        return list(futures), []

    def get(self, future: Done, timeout: float | None = None) -> Any:
        if future.error is not None:
            raise future.error
        return future.value

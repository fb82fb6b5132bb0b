"""The transport between Ray actors: ``handle.method.remote``, ``ray.wait``, ``ray.get``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ray
from ray import exceptions as rex

from cluster.engine.transport import HostLost


class RayTransport:
    """Calls Ray actors; a lost or silent actor surfaces as :class:`HostLost`.

    It holds nothing, so it travels to the actors that use it (operator hosts).
    """

    def call(self, handle: Any, method: str, *args: Any) -> Any:
        return getattr(handle, method).remote(*args)

    def wait(
        self, futures: Sequence[Any], num_returns: int, timeout: float | None
    ) -> tuple[list[Any], list[Any]]:
        return ray.wait(list(futures), num_returns=num_returns, timeout=timeout)

    def get(self, future: Any, timeout: float | None = None) -> Any:
        try:
            return ray.get(future, timeout=timeout)
        except (
            rex.RayActorError,
            rex.ActorUnavailableError,
            rex.GetTimeoutError,
            rex.ObjectLostError,
        ) as exc:
            raise HostLost(f"{type(exc).__name__}: {str(exc).splitlines()[0]}") from None
        except rex.RayTaskError as exc:
            raise exc.as_instanceof_cause() from None

"""The runtime's error: a run or a network command that cannot start or finish."""

from __future__ import annotations

from protocol.errors import StakerayError


class RunError(StakerayError):
    """The run cannot start or finish (one line)."""

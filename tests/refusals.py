"""The one check every refusal test makes: the typed error, and nothing changed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from protocol import Protocol, ProtocolError


def assert_refused(
    p: Protocol, exc: type[ProtocolError], fn: Callable[..., Any], *args: Any, **kwargs: Any
) -> None:
    """Assert that the call raises ``exc`` and leaves the state exactly as it was."""
    before = p.state_hash()
    with pytest.raises(exc):
        fn(*args, **kwargs)
    assert p.state_hash() == before

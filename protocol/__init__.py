"""stakeray's protocol: the rulebook (SPEC.md) as pure, deterministic code."""

from .errors import *  # noqa: F403
from .errors import ProtocolError
from .params import PRESETS, Params
from .protocol import Protocol
from .rounds import InvariantViolation
from .units import PPB, PPM, PRECISE, TOKEN, tokens

__all__ = [
    "PPB",
    "PPM",
    "PRECISE",
    "PRESETS",
    "TOKEN",
    "InvariantViolation",
    "Params",
    "Protocol",
    "ProtocolError",
    "tokens",
]

"""Errors the library raises, each carrying the verdict code it maps to and the field at fault."""
from __future__ import annotations

from enum import IntEnum


class VerdictCode(IntEnum):
    """Go/no-go codes; the values equal the constants of ``world_irp_ros/msg/Verdict``."""

    GO = 0
    NO_GO_COLLISION = 1
    NO_GO_MISSES_TARGET = 2
    NO_GO_STALE_STATE = 3
    NO_GO_INVALID_REQUEST = 4
    NO_GO_DEADLINE = 5
    NO_GO_BACKEND_ERROR = 6
    NO_GO_UNCERTAIN = 7
    NO_GO_UNKNOWN_OBJECT = 8
    NO_GO_TOO_MANY_CANDIDATES = 9
    NO_GO_BUSY = 10
    NO_GO_NOT_ACTIVE = 11
    NO_GO_CANCELED = 12


# Codes that judge a predicted outcome; every other NO-GO reports a problem (bad input, a failure,
# load, the lifecycle) and is logged once per cause by the node.
OUTCOME_CODES = frozenset({VerdictCode.GO, VerdictCode.NO_GO_COLLISION, VerdictCode.NO_GO_MISSES_TARGET,
                           VerdictCode.NO_GO_UNCERTAIN})
PROBLEM_CODES = frozenset(VerdictCode) - OUTCOME_CODES


class WorldIrpError(Exception):
    """Base error: ``code`` is the NO-GO code a caller reports, ``reason`` a sentence for people."""

    code = VerdictCode.NO_GO_BACKEND_ERROR

    def __init__(self, reason: str, field: str = ""):
        super().__init__(f"{field}: {reason}" if field else reason)
        self.reason = reason
        self.field = field


class ValidationError(WorldIrpError, ValueError):
    """A request, scene or parameter is malformed; ``field`` names it (e.g. ``actions[2].type``)."""

    code = VerdictCode.NO_GO_INVALID_REQUEST


class UnknownObjectError(ValidationError):
    """An action names an object id the scene does not hold."""

    code = VerdictCode.NO_GO_UNKNOWN_OBJECT


class BackendError(WorldIrpError):
    """The forward model failed or is unavailable."""

    code = VerdictCode.NO_GO_BACKEND_ERROR



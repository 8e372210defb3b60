"""How a function sees its arguments: the evaluation environment, the refusals that become
Step Functions' causes, and the coercions Java applies to numbers (intValue, Math.round)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from orchestrator.asl import errors, jsonpath
from orchestrator.asl.intrinsics.java import json_text

# Step Functions reports intrinsic faults as States.Runtime, which Retry/Catch cannot match.
FAILURE_ERROR = errors.RUNTIME


class Fault(Exception):
    """A function refused its arguments; `message` is the text Step Functions puts in the cause."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArguments(Exception):
    """Raised by a function body; turned into "Invalid arguments in States.<Name>"."""


@dataclass(frozen=True)
class Env:
    """What a running call sees: its expression (for causes), the data, context and variables its
    path arguments read, and the injected randomness."""

    expr: str
    data: Any
    context: Any
    variables: Mapping[str, Any] | None
    rng: random.Random
    new_uuid: Callable[[], str]

    def read(self, path: str) -> Any:
        try:
            return jsonpath.read(path, self.data, context=self.context, variables=self.variables)
        except jsonpath.PathNotFound:
            # Step Functions names a context path relative to the context object and shows the
            # state input, not the context object, in this message.
            shown = "$" + path[2:] if path.startswith("$$") else path
            raise errors.StatesError(
                FAILURE_ERROR,
                f"The function '{self.expr}' had the following error: The JsonPath argument for the "
                f"field '{shown}' could not be found in the input '{json_text(self.data)}'",
            ) from None


def is_number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def truncated(value: Any) -> int:
    """A numeric argument as an int, truncated toward zero as Java's intValue() does."""
    if not is_number(value):
        raise InvalidArguments
    return int(value)  # int() truncates toward zero


def rounded(value: Any) -> int:
    """A numeric argument rounded like Java's Math.round: halves go toward positive infinity."""
    if not is_number(value):
        raise InvalidArguments
    return math.floor(Fraction(value) + Fraction(1, 2))


def as_array(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidArguments
    return value


def as_string(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidArguments
    return value

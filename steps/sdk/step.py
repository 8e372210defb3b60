"""`@step`, step discovery and invocation (see the package docstring)."""

from __future__ import annotations

import importlib
import inspect
import json
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar, get_type_hints, overload

from pydantic import BaseModel

from schemas.errors import BatonError

_ATTRIBUTE = "__baton_step__"


class StepFailed(BatonError):
    """Raise from a step to fail the task with an explicit ASL error name and cause."""

    def __init__(self, error: str, cause: str | None = None) -> None:
        super().__init__(cause or error)
        self.error = error
        self.cause = cause


@dataclass(frozen=True)
class StepDefinition:
    name: str
    function: Callable[..., Awaitable[Any]]
    input_model: type[BaseModel] | None
    takes_input: bool


F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


@overload
def step(name: F) -> F: ...


@overload
def step(name: str | None = None) -> Callable[[F], F]: ...


def step(name: str | Callable[..., Awaitable[Any]] | None = None) -> Any:
    """Mark an async function as a step named `name` (default: the function's name).

    Works as `@step("name")`, `@step()` and bare `@step`.
    """
    if callable(name):
        return step(None)(name)

    def mark(function: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        if not inspect.iscoroutinefunction(function):
            raise TypeError(f"step {function.__name__!r} must be an async function")
        parameters = list(inspect.signature(function).parameters.values())
        hints = get_type_hints(function)
        model = hints.get(parameters[0].name) if parameters else None
        definition = StepDefinition(
            name=name or function.__name__,
            function=function,
            input_model=model if isinstance(model, type) and issubclass(model, BaseModel) else None,
            takes_input=bool(parameters),
        )
        setattr(function, _ATTRIBUTE, definition)
        return function

    return mark


def collect_steps(module: ModuleType) -> dict[str, StepDefinition]:
    """Every @step function defined in a module, by step name."""
    found: dict[str, StepDefinition] = {}
    for value in vars(module).values():
        definition = getattr(value, _ATTRIBUTE, None)
        if isinstance(definition, StepDefinition):
            found[definition.name] = definition
    return found


def load_steps(module_names: list[str]) -> dict[str, StepDefinition]:
    """Import modules by dotted name and collect their steps; ImportError says which module failed."""
    steps: dict[str, StepDefinition] = {}
    for module_name in module_names:
        steps.update(collect_steps(importlib.import_module(module_name)))
    return steps


class StepError(BatonError):
    """A step's failure, as the task failure it becomes: ASL error name and cause."""

    def __init__(self, error: str, cause: str | None) -> None:
        super().__init__(f"{error}: {cause}")
        self.error = error
        self.cause = cause


def _lambda_style_cause(exc: BaseException) -> str:
    return json.dumps(
        {
            "errorMessage": str(exc),
            "errorType": type(exc).__name__,
            "stackTrace": traceback.format_tb(exc.__traceback__),
        }
    )


async def invoke_step(definition: StepDefinition, payload: Any) -> Any:
    """Run a step on a JSON payload; return JSON-ready output or raise StepError."""
    try:
        if not definition.takes_input:
            result = await definition.function()
        elif definition.input_model is not None:
            result = await definition.function(definition.input_model.model_validate(payload))
        else:
            result = await definition.function(payload)
    except StepFailed as exc:
        raise StepError(exc.error, exc.cause) from exc
    except Exception as exc:  # any failure of user code is a task failure, never a crash
        raise StepError(type(exc).__name__, _lambda_style_cause(exc)) from exc
    if isinstance(result, BaseModel):
        return result.model_dump(mode="json")
    return result

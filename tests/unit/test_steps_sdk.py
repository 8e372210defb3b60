"""The steps SDK (`steps.sdk`): `@step`, discovery and invocation.

A step's failure becomes a task failure the way a Lambda function's does ([lambda-errors] Step
Functions developer guide, "Handling errors ... Lambda": an unhandled exception is reported with
the exception's type as the error name and a JSON cause with errorMessage, errorType and
stackTrace), or with an explicit ASL error name through `StepFailed`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import types
from datetime import datetime, timezone
from typing import Any

import pytest
from pydantic import BaseModel

from steps.sdk import StepDefinition, StepFailed, collect_steps, invoke_step, load_steps, step
from steps.sdk.step import StepError


class Order(BaseModel):
    id: int
    items: list[str] = []


class Receipt(BaseModel):
    order_id: int
    count: int
    at: datetime


def definition_of(function: Any) -> StepDefinition:
    found = getattr(function, "__baton_step__", None)
    assert isinstance(found, StepDefinition)
    return found


def invoke(function: Any, payload: Any) -> Any:
    return asyncio.run(invoke_step(definition_of(function), payload))


def invoke_error(function: Any, payload: Any) -> StepError:
    with pytest.raises(StepError) as info:
        invoke(function, payload)
    return info.value


# --- @step ---------------------------------------------------------------------------------------


class TestStepDecorator:
    def test_requires_an_async_function(self) -> None:
        def plain(payload: Any) -> Any:
            return payload

        with pytest.raises(TypeError, match="async"):
            step("plain")(plain)

    def test_rejects_an_async_generator(self) -> None:
        async def stream(payload: Any) -> Any:
            yield payload

        with pytest.raises(TypeError, match="async"):
            step()(stream)

    def test_rejects_a_lambda(self) -> None:
        with pytest.raises(TypeError):
            step("l")(lambda payload: payload)

    def test_name_defaults_to_the_function_name(self) -> None:
        @step()
        async def classify(payload: Any) -> Any:
            return payload

        assert definition_of(classify).name == "classify"

    def test_explicit_name(self) -> None:
        @step("llm.classify")
        async def classify(payload: Any) -> Any:
            return payload

        assert definition_of(classify).name == "llm.classify"

    def test_returns_the_function_itself(self) -> None:
        """The decorator only annotates: the function is still directly callable."""

        async def double(n: int) -> int:
            return n * 2

        assert step("double")(double) is double
        assert asyncio.run(double(4)) == 8

    def test_input_model_from_the_first_parameter(self) -> None:
        @step()
        async def place(order: Order, extra: int = 0) -> Any:
            return order

        @step()
        async def raw(payload: dict[str, Any]) -> Any:
            return payload

        @step()
        async def untyped(payload):  # type: ignore[no-untyped-def]
            return payload

        @step()
        async def nothing() -> str:
            return "x"

        assert definition_of(place).input_model is Order and definition_of(place).takes_input
        assert definition_of(raw).input_model is None and definition_of(raw).takes_input
        assert definition_of(untyped).input_model is None and definition_of(untyped).takes_input
        assert definition_of(nothing).input_model is None and not definition_of(nothing).takes_input


# --- discovery -----------------------------------------------------------------------------------


@step("first")
async def first_step(order: Order) -> Receipt:
    return Receipt(order_id=order.id, count=len(order.items), at=datetime(2024, 6, 1, tzinfo=timezone.utc))


@step()
async def second(payload: Any) -> Any:
    return {"echo": payload}


async def not_a_step(payload: Any) -> Any:
    return payload


def module(**members: Any) -> types.ModuleType:
    mod = types.ModuleType("fake_steps")
    for name, value in members.items():
        setattr(mod, name, value)
    return mod


class TestDiscovery:
    def test_collect_steps_finds_only_marked_functions(self) -> None:
        found = collect_steps(module(first_step=first_step, second=second, not_a_step=not_a_step, CONSTANT=3))
        assert set(found) == {"first", "second"}
        assert found["first"].function is first_step
        assert found["second"].function is second

    def test_collect_steps_of_an_empty_module(self) -> None:
        assert collect_steps(module()) == {}

    def test_load_steps_imports_by_dotted_name(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setitem(sys.modules, "baton_test_steps_a", module(first_step=first_step))
        monkeypatch.setitem(sys.modules, "baton_test_steps_b", module(second=second))
        assert set(load_steps(["baton_test_steps_a", "baton_test_steps_b"])) == {"first", "second"}

    def test_load_steps_unknown_module(self) -> None:
        with pytest.raises(ImportError):
            load_steps(["baton_no_such_module_anywhere"])


# --- invocation ----------------------------------------------------------------------------------


class TestInvokeStep:
    def test_payload_is_validated_into_the_model_and_the_result_dumped_to_json(self) -> None:
        result = invoke(first_step, {"id": "7", "items": ["a", "b"]})
        assert result == {"order_id": 7, "count": 2, "at": "2024-06-01T00:00:00Z"}
        json.dumps(result)

    def test_plain_payload_and_result(self) -> None:
        assert invoke(second, [1, {"a": None}]) == {"echo": [1, {"a": None}]}

    def test_step_without_input_ignores_the_payload(self) -> None:
        @step()
        async def ping() -> str:
            return "pong"

        assert invoke(ping, {"whatever": 1}) == "pong"

    @pytest.mark.parametrize("payload", [{"items": []}, {"id": "not a number"}, None, "text", [1]])
    def test_validation_errors_become_task_failures(self, payload: Any) -> None:
        err = invoke_error(first_step, payload)
        assert err.error == "ValidationError"
        cause = json.loads(err.cause or "")
        assert cause["errorType"] == "ValidationError"
        assert "Order" in cause["errorMessage"]

    def test_exception_class_name_is_the_error(self) -> None:
        """[lambda-errors] an unhandled exception's type is the error name; the cause is the
        Lambda-style JSON object."""

        class InventoryMissing(Exception):
            pass

        @step()
        async def reserve(payload: Any) -> Any:
            raise InventoryMissing("sku 42 is out of stock")

        err = invoke_error(reserve, {})
        assert err.error == "InventoryMissing"
        cause = json.loads(err.cause or "")
        assert cause["errorMessage"] == "sku 42 is out of stock"
        assert cause["errorType"] == "InventoryMissing"
        assert any("reserve" in frame for frame in cause["stackTrace"])

    def test_builtin_exceptions(self) -> None:
        @step()
        async def divide(payload: Any) -> Any:
            return 1 / payload["d"]

        assert invoke_error(divide, {"d": 0}).error == "ZeroDivisionError"
        assert invoke_error(divide, {}).error == "KeyError"

    def test_step_failed_sets_an_explicit_error_and_cause(self) -> None:
        @step()
        async def review(payload: Any) -> Any:
            raise StepFailed("Review.Rejected", "not good enough")

        @step()
        async def terse(payload: Any) -> Any:
            raise StepFailed("Terse.Error")

        err = invoke_error(review, {})
        assert (err.error, err.cause) == ("Review.Rejected", "not good enough")
        err = invoke_error(terse, {})
        assert (err.error, err.cause) == ("Terse.Error", None)

    def test_cancellation_is_not_a_task_failure(self) -> None:
        """A cancelled step (the runtime shutting down, a task timeout) must not be reported as a
        task failure of the user's code."""

        @step()
        async def cancelled(payload: Any) -> Any:
            raise asyncio.CancelledError()

        with pytest.raises(asyncio.CancelledError):
            invoke(cancelled, {})

    def test_each_invocation_gets_its_own_model_instance(self) -> None:
        seen: list[Order] = []

        @step()
        async def keep(order: Order) -> int:
            seen.append(order)
            order.items.append("mutated")
            return len(order.items)

        payload = {"id": 1, "items": ["a"]}
        assert invoke(keep, payload) == 2
        assert invoke(keep, payload) == 2
        assert payload == {"id": 1, "items": ["a"]}
        assert seen[0] is not seen[1]


def test_bare_decorator_registers_the_step_under_its_function_name() -> None:
    import types

    from steps.sdk import collect_steps, step

    @step
    async def summarise(payload: Any) -> Any:
        return payload

    module = types.ModuleType("m")
    module.summarise = summarise  # type: ignore[attr-defined]
    assert list(collect_steps(module)) == ["summarise"]

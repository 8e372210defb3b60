"""Map: one child run per item, at most MaxConcurrency at a time, with tolerated failures
(shared fan-out pieces: children.py)."""

from __future__ import annotations

import copy
from typing import Any

from orchestrator.asl import causes, errors
from orchestrator.asl.context import StateContext, StateHooks
from orchestrator.asl.dataflow import Scope, error_output, read_path_field, resolve_template, select, to_json
from orchestrator.asl.execution import FanOut, Run
from orchestrator.asl.model import ABSENT, State
from orchestrator.asl.processing import evaluate_jsonata, field
from orchestrator.asl.states.children import count_ended, fanout_done, fanout_failed, preset, spawn


def execute(ctx: StateContext, run: Run, state: State) -> None:
    scope = ctx.scope(run, state)
    effective, items = map_items(run, state, scope)
    fanout = FanOut(
        kind="map",
        children=[None] * len(items),
        results=[None] * len(items),
        items=copy.deepcopy(items),
        max_concurrency=map_number(state, "MaxConcurrency", effective, scope, run) or 0,
        tolerated_count=map_number(state, "ToleratedFailureCount", effective, scope, run),
        tolerated_percentage=map_number(state, "ToleratedFailurePercentage", effective, scope, run),
        effective_input=effective,
    )
    run.fanout = fanout
    run.status = "waiting"
    ctx.history("MapStateStarted", {"length": len(items)})
    preset(run, fanout)  # a redrive reruns only the iterations that did not succeed
    if fanout.finished == len(items):
        fanout_done(ctx, run, state)
        return
    launch_items(ctx, run, state)


def map_items(run: Run, state: State, scope: Scope) -> tuple[Any, list[Any]]:
    """The Map's effective input and its items (ItemsPath, or JSONata Items)."""
    if state.is_jsonata:
        raw_items = state.get("Items")
        if raw_items is ABSENT:
            if not isinstance(run.raw_input, list):
                raise errors.StatesError(
                    errors.QUERY_EVALUATION_ERROR,
                    f"Map state input must be an array but was: {to_json(run.raw_input)}",
                )
            return run.raw_input, run.raw_input
        items = evaluate_jsonata(run, scope, raw_items, "Items")
        if not isinstance(items, list):
            raise errors.StatesError(
                errors.QUERY_EVALUATION_ERROR,
                f"The JSONata expression '{causes.expression_text(raw_items)}' specified for the field 'Items' "
                f"returned an unexpected result type. Expected 'array', but was '{causes.json_type(items)}' "
                f"for value: {to_json(items)}",
            )
        return run.raw_input, items
    effective = select(state.get("InputPath"), run.raw_input, scope)
    items_path = state.get("ItemsPath", "$")
    items = read_path_field("ItemsPath", items_path, effective, scope)
    if not isinstance(items, list):
        raise errors.StatesError(
            errors.RUNTIME,
            f"Invalid path '{items_path}': the value is not an array: {to_json(items)}",
        )
    return effective, items


def map_number(state: State, name: str, data: Any, scope: Scope, run: Run | None = None) -> Any:
    """MaxConcurrency, ToleratedFailureCount, ToleratedFailurePercentage, or their Path form."""
    if state.has(name):
        if run is not None and state.is_jsonata:
            return field(run, state, scope, name)
        return state.get(name)
    if not state.has(name + "Path"):
        return None
    path = state.get(name + "Path")
    value = read_path_field(name + "Path", path, data, scope)
    is_percentage = name == "ToleratedFailurePercentage"
    number = not isinstance(value, bool) and isinstance(value, (int, float))
    if not number or (not is_percentage and value != int(value)):
        kind = "float" if is_percentage else "integer"
        raise errors.StatesError(
            errors.RUNTIME,
            f"The {name}Path field refers to value \"{causes.plain(value)}\" which is not a valid {kind}: {path}",
        )
    if is_percentage:
        if not 0 <= value <= 100:
            raise errors.StatesError(errors.RUNTIME, f"{name} must be between 0 and 100.")
        return float(value)
    if value < 0:
        raise errors.StatesError(errors.RUNTIME, f"{name} cannot be negative.")
    return int(value)


def launch_items(ctx: StateContext, run: Run, state: State) -> None:
    fanout = run.fanout
    assert fanout is not None and state.processor is not None
    while fanout.next_index < len(fanout.items) and (
        fanout.max_concurrency == 0 or fanout.running < fanout.max_concurrency
    ):
        index = fanout.next_index
        fanout.next_index += 1
        if fanout.redriven and index in fanout.succeeded:
            continue  # completed before a redrive
        item = fanout.items[index]
        selector = state.get("ItemSelector", state.get("Parameters"))
        if selector is not ABSENT:
            scope = ctx.scope(run, state, Map={"Item": {"Index": index, "Value": item}})
            if state.is_jsonata:
                item = evaluate_jsonata(run, scope, selector, "ItemSelector")
            else:
                item = resolve_template(selector, fanout.effective_input, scope)
        child = spawn(ctx, run, state, -1, index)
        child.map_item = {"Index": index, "Value": fanout.items[index]}
        fanout.children[index] = child.id
        fanout.running += 1
        ctx.history("MapIterationStarted", {"name": state.name, "index": index})
        ctx.enter(child, state.processor.start_at, item)


def tolerance_exceeded(fanout: FanOut) -> bool:
    """Without a threshold any failure fails the Map; with both, exceeding either does
    (AWS guide, "Tolerated failure threshold for Distributed Map state")."""
    if fanout.tolerated_count is None and fanout.tolerated_percentage is None:
        return fanout.failed > 0
    if fanout.tolerated_count is not None and fanout.failed > fanout.tolerated_count:
        return True
    percentage = fanout.failed * 100.0 / len(fanout.items)
    return fanout.tolerated_percentage is not None and percentage > fanout.tolerated_percentage


def child_done(ctx: StateContext, run: Run, state: State, child: Run) -> None:
    """An iteration ended: count it, fail the Map past its tolerated failures, else start the next
    items; once all have ended, their results (failures as error outputs) join in item order."""
    fanout = count_ended(run)
    if fanout is None:
        return
    if child.status == "failed":
        ctx.history("MapIterationFailed", {"name": state.name, "index": child.index})
        fanout.failed += 1
        fanout.results[child.index] = error_output(child.error or "", child.cause)
        if tolerance_exceeded(fanout):
            tolerant = fanout.tolerated_count is not None or fanout.tolerated_percentage is not None
            if tolerant:
                fanout_failed(
                    ctx, run, state, errors.EXCEED_TOLERATED_FAILURE_THRESHOLD,
                    "The specified tolerated failure threshold was exceeded",
                )
            else:
                fanout_failed(ctx, run, state, child.error, child.cause)
            return
    else:
        ctx.history("MapIterationSucceeded", {"name": state.name, "index": child.index})
        fanout.results[child.index] = child.output
        fanout.succeeded.append(child.index)
    if fanout.finished == len(fanout.items):
        fanout_done(ctx, run, state)
    else:
        try:
            launch_items(ctx, run, state)
        except errors.StatesError as exc:
            fanout_failed(ctx, run, state, exc.error, exc.cause, raised_here=True)


HOOKS = StateHooks(execute, child_done=child_done)

"""Input and output processing of the JSONPath query language.

AWS applies, in order (Step Functions developer guide, "Processing input and output"):
InputPath -> Parameters -> (the task runs) -> ResultSelector -> ResultPath -> OutputPath.
Each function here is one of those stages; errors carry AWS's error names and causes.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.asl import errors, intrinsics, jsonpath
from orchestrator.asl.execution import ExecutionState, Run
from orchestrator.asl.model import ABSENT, State
from orchestrator.asl.retry import RETRIABLE_TYPES


@dataclass
class Scope:
    """What paths can see while a state is evaluated: the context object, variables, randomness."""

    context: dict[str, Any]
    variables: Mapping[str, Any]
    rng: random.Random
    new_uuid: Callable[[], str]


def context_object(execution: ExecutionState, run: Run, state: State, role_arn: str, **extra: Any) -> dict[str, Any]:
    """The context object (`$$`) of a state being evaluated: the execution, the state machine, the
    state (with its RetryCount where it can retry), plus `extra` (Task.Token, Map.Item)."""
    context: dict[str, Any] = {
        "Execution": {
            "Id": execution.execution_id,
            "Input": execution.input,
            "StartTime": execution.start_time,
            "Name": execution.name,
            "RoleArn": role_arn,
            "RedriveCount": execution.redrive_count,
        },
        "StateMachine": {"Id": execution.state_machine_id, "Name": execution.state_machine_name},
        "State": {"EnteredTime": run.entered_time, "Name": state.name},
    }
    if state.type in RETRIABLE_TYPES:
        context["State"]["RetryCount"] = run.retry_count
    context.update(extra)
    return context


def to_json(value: Any) -> str:
    """Compact JSON as AWS prints values inside causes and strings."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _bracketed(segments: list[str | int]) -> str:
    return "$" + "".join(f"[{s}]" if isinstance(s, int) else f"['{s}']" for s in segments)


def _missing_cause(path: str, data: Any) -> str:
    """Jayway's wording for a definite path that matched nothing, as AWS reports it."""
    _, _, body = jsonpath.split_prefix(path)
    try:
        segments = jsonpath.reference_segments(body)
    except jsonpath.PathSyntaxError:
        return f"Invalid path '{path}' : No results for path: {path}"
    node = data
    for i, segment in enumerate(segments):
        found = (
            isinstance(node, dict) and isinstance(segment, str) and segment in node
        ) or (isinstance(node, list) and isinstance(segment, int) and -len(node) <= segment < len(node))
        if not found:
            if i == len(segments) - 1:
                return f"Invalid path '{path}' : No results for path: {_bracketed(segments)}"
            return f"Invalid path '{path}' : Missing property in path {_bracketed(segments[: i + 1])}"
        node = node[segment]
    return f"Invalid path '{path}' : No results for path: {_bracketed(segments)}"


def select(path: Any, data: Any, scope: Scope) -> Any:
    """InputPath / OutputPath: absent means `$`, null means `{}` (ASL spec, "InputPath & OutputPath")."""
    if path is ABSENT or path == "$":
        return data
    if path is None:
        return {}
    try:
        return jsonpath.read(path, data, context=scope.context, variables=scope.variables)
    except jsonpath.PathNotFound:
        source = scope.context if path.startswith("$$") else data
        raise errors.StatesError(errors.RUNTIME, _missing_cause(path, source)) from None


def resolve_template(template: Any, data: Any, scope: Scope) -> Any:
    """Evaluate a payload template (Parameters, ResultSelector, ItemSelector, Assign in JSONPath).

    Keys ending in `.$` take the value of a path or an intrinsic function, under the key without
    the suffix; everything else is copied, recursively through objects and arrays.
    """
    if isinstance(template, dict):
        out: dict[str, Any] = {}
        for key, value in template.items():
            if key.endswith(".$") and isinstance(value, str):
                out[key[:-2]] = _dynamic_value(key, value, data, scope)
            else:
                out[key] = resolve_template(value, data, scope)
        return out
    if isinstance(template, list):
        return [resolve_template(v, data, scope) for v in template]
    return copy.deepcopy(template)


def _dynamic_value(key: str, expr: str, data: Any, scope: Scope) -> Any:
    if intrinsics.is_intrinsic(expr):
        return intrinsics.evaluate(
            expr, data, context=scope.context, variables=scope.variables, rng=scope.rng, new_uuid=scope.new_uuid
        )
    try:
        return copy.deepcopy(jsonpath.read(expr, data, context=scope.context, variables=scope.variables))
    except jsonpath.PathNotFound:
        raise errors.StatesError(
            errors.RUNTIME,
            f"The JSONPath '{expr}' specified for the field '{key}' could not be found in the input '{to_json(data)}'",
        ) from None


def read_path_field(field_name: str, path: str, data: Any, scope: Scope) -> Any:
    """A `...Path` field (SecondsPath, ErrorPath, MaxConcurrencyPath, ...): a path or, where allowed, an intrinsic."""
    if intrinsics.is_intrinsic(path):
        return intrinsics.evaluate(
            path, data, context=scope.context, variables=scope.variables, rng=scope.rng, new_uuid=scope.new_uuid
        )
    try:
        return jsonpath.read(path, data, context=scope.context, variables=scope.variables)
    except jsonpath.PathNotFound:
        raise errors.StatesError(
            errors.RUNTIME,
            f"The JSONPath '{path}' specified for the field '{field_name}' could not be found "
            f"in the input '{to_json(data)}'",
        ) from None


def merge_result(result_path: Any, state_input: Any, result: Any) -> Any:
    """ResultPath: place the result into a copy of the state's input.

    Absent or `$` replaces the input with the result; null keeps the input and discards the
    result; a reference path sets that location, creating missing objects on the way
    (ASL spec, "ResultPath"). Writing through a non-object fails with States.ResultPathMatchFailure.
    """
    if result_path is ABSENT or result_path == "$":
        return result
    if result_path is None:
        return state_input
    kind, _, body = jsonpath.split_prefix(result_path)
    segments = jsonpath.reference_segments(body)
    if not segments:
        return result
    output = copy.deepcopy(state_input)
    node = output
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if isinstance(segment, str):
            if not isinstance(node, dict):
                raise _result_path_failure(result_path, state_input)
            if last:
                node[segment] = result
            else:
                child = node.get(segment)
                if not isinstance(child, (dict, list)):
                    child = node[segment] = {}
                node = child
        else:
            if not isinstance(node, list) or not -len(node) <= segment < len(node):
                raise _result_path_failure(result_path, state_input)
            if last:
                node[segment] = result
            else:
                node = node[segment]
    return output


def _result_path_failure(result_path: str, state_input: Any) -> errors.StatesError:
    return errors.StatesError(
        errors.RESULT_PATH_MATCH_FAILURE,
        f"Unable to apply ResultPath \"{result_path}\" to input \"{to_json(state_input)}\"",
    )


def error_output(error: str, cause: str | None) -> dict[str, Any]:
    """The object a Catcher passes on: {"Error", "Cause"} (Cause omitted when there is none)."""
    out: dict[str, Any] = {"Error": error}
    if cause is not None:
        out["Cause"] = cause
    return out

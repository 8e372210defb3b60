"""A state's input and output processing, whole, in both query languages.

JSONPath states apply InputPath -> Parameters -> (the work) -> ResultSelector -> Assign,
ResultPath -> OutputPath (AWS developer guide, "Processing input and output"; each stage is in
`dataflow`); JSONata states apply Arguments -> (the work) -> Assign, Output ("Transforming data
with JSONata"), where `{% %}` expressions see `$states` (input, result, errorOutput, context) and
the variables. Assignments are evaluated here but applied when the state is left (`leave`).
"""

from __future__ import annotations

from typing import Any

from orchestrator.asl import errors
from orchestrator.asl.context import StateContext
from orchestrator.asl.dataflow import Scope, merge_result, resolve_template, select, to_json
from orchestrator.asl.execution import Run
from orchestrator.asl.model import ABSENT, Catcher, State


def check_payload_size(state: State, value: Any, limit: int, what: str = "a result") -> None:
    """States.DataLimitExceeded past the payload quota (256 KiB by default, configurable)."""
    if len(to_json(value).encode()) > limit:
        verb = "returned" if what == "a result" else "has"
        raise errors.StatesError(
            errors.DATA_LIMIT_EXCEEDED,
            f"The state/task '{state.name}' {verb} {what} with a size exceeding "
            "the maximum number of bytes service limit.",
        )


def evaluate_jsonata(run: Run, scope: Scope, template: Any, field: str, **states: Any) -> Any:
    """A JSONata template (a field's value, `{% %}` strings evaluated) with `$states` bound."""
    from orchestrator.asl import jsonata

    bound = {"input": run.raw_input, "context": scope.context, **states}
    return jsonata.evaluate_template(
        template, field=field, states=bound, variables=run.variables, rng=scope.rng, new_uuid=scope.new_uuid
    )


def field(run: Run, state: State, scope: Scope, name: str, **states: Any) -> Any:
    """A literal field, or in a JSONata state possibly an expression (Seconds, Items, Error, ...)."""
    value = state.get(name)
    if state.is_jsonata and value is not ABSENT:
        return evaluate_jsonata(run, scope, value, name, **states)
    return value


def assignments(template: Any, value: Any, scope: Scope) -> dict[str, Any]:
    """Assign (JSONPath flavour), evaluated but not yet applied: `$` is the state's result (or
    its effective input, for Choice and Wait; the error output, in a Catcher)."""
    if template is ABSENT or template is None:
        return {}
    assigned: dict[str, Any] = resolve_template(template, value, scope)
    return assigned


def finish_jsonata(run: Run, scope: Scope, output_template: Any, assign_template: Any,
                   default: Any, **states: Any) -> tuple[Any, dict[str, Any]]:
    """JSONata Output and Assign, evaluated (Assign first, as AWS reports its errors first) but
    not applied: both see the variables as they were before this state."""
    assigned: dict[str, Any] = {}
    if assign_template is not ABSENT and assign_template is not None:
        assigned = evaluate_jsonata(run, scope, assign_template, "Assign", **states)
    output = (evaluate_jsonata(run, scope, output_template, "Output", **states)
              if output_template is not ABSENT else default)
    return output, assigned


def passthrough_output(run: Run, state: State, scope: Scope, effective: Any,
                       rule: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
    """Output and assignments of a state without a result (Choice, Wait, Succeed, JSONata Pass)."""
    source = rule if rule is not None else state.raw
    if state.is_jsonata:
        return finish_jsonata(run, scope, source.get("Output", ABSENT), source.get("Assign", ABSENT), run.raw_input)
    assigned = assignments(source.get("Assign", ABSENT), effective, scope)
    output = select(state.get("OutputPath"), effective, scope)
    return output, assigned


def task_input(ctx: StateContext, run: Run, state: State, scope: Scope) -> Any:
    """InputPath then Parameters (JSONPath), or Arguments (JSONata): what the task/branches get."""
    if state.is_jsonata:
        arguments = state.get("Arguments")
        effective = run.raw_input if arguments is ABSENT else evaluate_jsonata(run, scope, arguments, "Arguments")
        ctx.inspect(run, "afterArguments", effective)
        ctx.check_size(state, effective, what="an input")
        return effective
    effective = select(state.get("InputPath"), run.raw_input, scope)
    ctx.inspect(run, "afterInputPath", effective)
    if state.has("Parameters"):
        effective = resolve_template(state.get("Parameters"), effective, scope)
        ctx.inspect(run, "afterParameters", effective)
    ctx.check_size(state, effective, what="an input")
    return effective


def result_to_output(ctx: StateContext, run: Run, state: State, result: Any,
                     scope: Scope) -> tuple[Any, dict[str, Any]]:
    """The output and the assignments of a state with a result (Pass, Task, Parallel, Map)."""
    if state.is_jsonata:
        output, assigned = finish_jsonata(run, scope, state.get("Output"), state.get("Assign"), result,
                                          result=result)
        ctx.inspect(run, "output", output)
        return output, assigned
    assigned = assignments(state.get("Assign"), result, scope)
    merged = merge_result(state.get("ResultPath"), run.raw_input, result)
    ctx.inspect(run, "afterResultPath", merged)
    output = select(state.get("OutputPath"), merged, scope)
    ctx.inspect(run, "output", output)
    return output, assigned


def apply_result(ctx: StateContext, run: Run, state: State, result: Any) -> None:
    """ResultSelector, then Assign/ResultPath/OutputPath (or JSONata Output), then leave the state."""
    try:
        ctx.check_size(state, result)
        scope = ctx.scope(run, state)
        ctx.inspect(run, "result", result)
        if state.has("ResultSelector") and not state.is_jsonata:
            result = resolve_template(state.get("ResultSelector"), result, scope)
            ctx.inspect(run, "afterResultSelector", result)
        ctx.exit(run, state, *result_to_output(ctx, run, state, result, scope))
    except errors.StatesError as exc:
        ctx.fail(run, state, exc.error, exc.cause, raised_here=True)


def catcher_output(run: Run, state: State, catcher: Catcher, failure: dict[str, Any],
                   scope: Scope) -> tuple[Any, dict[str, Any]]:
    """What a matching Catcher passes on: the error output placed by its ResultPath (or its JSONata
    Output), and its assignments, which see the error output as `$` (or `$states.errorOutput`)."""
    if state.is_jsonata:
        return finish_jsonata(run, scope, catcher.output, catcher.assign, failure, errorOutput=failure)
    assigned = assignments(catcher.assign, failure, scope)
    output = merge_result(catcher.result_path, run.raw_input, failure)
    return output, assigned


"""Choice: the first matching rule (JSONPath rules, or JSONata Condition) names the next state."""

from __future__ import annotations

from typing import Any

from orchestrator.asl import causes, choice, errors
from orchestrator.asl.context import StateContext, StateHooks
from orchestrator.asl.dataflow import Scope, select, to_json
from orchestrator.asl.execution import Run
from orchestrator.asl.model import State
from orchestrator.asl.processing import evaluate_jsonata, passthrough_output


def execute(ctx: StateContext, run: Run, state: State) -> None:
    scope = ctx.scope(run, state)
    effective = run.raw_input if state.is_jsonata else select(state.get("InputPath"), run.raw_input, scope)
    target: str | None = None
    matched: dict[str, Any] | None = None
    for rule in state.get("Choices"):
        if rule_matches(run, state, scope, rule, effective):
            target, matched = rule["Next"], rule
            break
    if target is None:
        target = state.get("Default", None)
        if target is None:
            raise errors.StatesError(errors.NO_CHOICE_MATCHED, "No Matches!")
    output, assigned = passthrough_output(run, state, scope, effective, matched)
    ctx.leave(run, state, output, assigned)
    ctx.enter(run, target, output)


def rule_matches(run: Run, state: State, scope: Scope, rule: dict[str, Any], effective: Any) -> bool:
    if not state.is_jsonata:
        return choice.evaluate_rule(rule, effective, context=scope.context, variables=run.variables)
    value = rule.get("Condition")
    outcome = evaluate_jsonata(run, scope, value, "Condition") if isinstance(value, str) else value
    if not isinstance(outcome, bool):
        raise errors.StatesError(
            errors.QUERY_EVALUATION_ERROR,
            f"The JSONata expression '{causes.expression_text(value)}' specified for the field 'Condition' returned "
            f"an unexpected result type. Expected 'boolean', but was '{causes.json_type(outcome)}' for value: "
            f"{to_json(outcome)}",
        )
    return outcome


HOOKS = StateHooks(execute)

"""The checks of each state type beyond its field table (ASL spec, each state's section): a Wait's
one duration, a Task's heartbeat within its timeout, a Parallel's branches and a Map's processor
(walked as nested machines), a Choice's rules and Default, and Retry and Catch.

Each check gets the walk as a `Walker`, which reports problems and walks nested machines.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol

from orchestrator.asl.budget import TASK_PARAMETER, BudgetError, parse_budget
from orchestrator.asl.errors import Problem
from orchestrator.asl.validate import choice_rules
from orchestrator.asl.validate.expressions import check_assign, is_jsonata
from orchestrator.asl.validate.fields import FIELD_CHECKS, RETRIER_CHECKS, check_error_equals, check_string, is_int
from orchestrator.asl.validate.flow import Scope
from orchestrator.asl.validate.problems import child, item, listing, wrong_language
from orchestrator.asl.validate.tables import (
    BRANCH_FIELDS,
    CATCHER_FIELDS,
    JSONATA,
    JSONATA_ONLY,
    JSONATA_RULE_FIELDS,
    JSONPATH,
    JSONPATH_ONLY,
    PROCESSOR_FIELDS,
    RETRIER_FIELDS,
    WAIT_DURATIONS,
)
from schemas.resources import service_for


class Walker(Protocol):
    """What a type check needs of the walk: to report a problem (or several) and to walk a nested
    state machine (a Parallel branch, a Map processor) as a scope of its own."""

    problems: list[Problem]

    def report(self, path: str, message: str) -> None: ...

    def machine(self, node: Any, path: str, allowed: frozenset[str], what: str) -> None: ...


# Pass, Succeed and Fail need nothing beyond the field tables and EXCLUSIVE_PAIRS.


def check_wait(v: Walker, scope: Scope, name: str, state: dict[str, Any], path: str, language: str) -> None:
    given = [key for key in WAIT_DURATIONS if key in state]
    if len(given) != 1:
        allowed = "'Seconds' or 'Timestamp'" if language == JSONATA else "'Seconds', 'SecondsPath', 'Timestamp' or 'TimestampPath'"
        found = f"it has {listing(given)}" if given else "it has none"
        v.report(path, f"a Wait state needs exactly one of {allowed}; {found}")


def check_task(v: Walker, scope: Scope, name: str, state: dict[str, Any], path: str, language: str) -> None:
    timeout: Any = state.get("TimeoutSeconds")
    heartbeat: Any = state.get("HeartbeatSeconds")
    if is_int(timeout) and is_int(heartbeat) and heartbeat >= timeout:
        v.report(child(path, "HeartbeatSeconds"), f"'HeartbeatSeconds' ({heartbeat}) must be smaller than 'TimeoutSeconds' ({timeout})")
    _task_budget(v, state, path)
    _retry_and_catch(v, scope, name, state, path, language)


def _task_budget(v: Walker, state: dict[str, Any], path: str) -> None:
    """A static `Budget` in an LLM Task's Parameters (or Arguments) is checked here, not first when
    the state runs; one taken from the input (`Budget.$`, JSONata) is checked when it runs."""
    resource = state.get("Resource")
    if not isinstance(resource, str) or service_for(resource) != "llm":
        return
    for holder in ("Parameters", "Arguments"):
        parameters = state.get(holder)
        if not isinstance(parameters, dict) or TASK_PARAMETER not in parameters:
            continue
        value = parameters[TASK_PARAMETER]
        if isinstance(value, str) and is_jsonata(value):
            continue
        where = child(child(path, holder), TASK_PARAMETER)
        try:
            parse_budget(value)
        except BudgetError as exc:
            for field, what in exc.problems:
                v.report(child(where, field) if field else where, what)


def check_parallel(v: Walker, scope: Scope, name: str, state: dict[str, Any], path: str, language: str) -> None:
    branches = state.get("Branches")
    branches_path = child(path, "Branches")
    if "Branches" in state and (not isinstance(branches, list) or not branches):
        v.report(branches_path, "'Branches' must be a non-empty array of state machines, each with 'StartAt' and 'States'")
    elif isinstance(branches, list):
        for index, branch in enumerate(branches):
            v.machine(branch, item(branches_path, index), BRANCH_FIELDS, "Parallel branch")
    _retry_and_catch(v, scope, name, state, path, language)


def check_map(v: Walker, scope: Scope, name: str, state: dict[str, Any], path: str, language: str) -> None:
    processors = [key for key in ("ItemProcessor", "Iterator") if key in state]
    if not processors:
        v.report(path, "a Map state requires 'ItemProcessor' (the state machine run for each item)")
    for key in processors:
        v.machine(state[key], child(path, key), PROCESSOR_FIELDS, "Map item processor")
    _retry_and_catch(v, scope, name, state, path, language)


def check_choice(v: Walker, scope: Scope, name: str, state: dict[str, Any], path: str, language: str) -> None:
    rules = state.get("Choices")
    rules_path = child(path, "Choices")
    if "Choices" in state and (not isinstance(rules, list) or not rules):
        v.report(rules_path, "'Choices' must be a non-empty array of choice rules")
    elif isinstance(rules, list):
        for index, rule in enumerate(rules):
            _choice_rule(v, scope, name, rule, item(rules_path, index), language)
    if "Default" in state:
        default_path = child(path, "Default")
        if isinstance(state["Default"], str):
            scope.add_edge(name, state["Default"], default_path)
        else:
            v.report(default_path, "'Default' must be a string naming a state")


def _choice_rule(v: Walker, scope: Scope, name: str, rule: Any, path: str, language: str) -> None:
    if not isinstance(rule, dict):
        v.report(path, "a choice rule must be a JSON object")
        return
    if language == JSONATA:
        _jsonata_rule(v, rule, path)
    else:
        # choice.py checks the operators, Next and Condition; Output is a query-language matter.
        if "Output" in rule:
            v.report(child(path, "Output"), wrong_language("Output", JSONPATH))
        operators = {key: value for key, value in rule.items() if key != "Output"}
        v.problems += choice_rules.validate_rule(operators, path, top_level=True)
    if "Assign" in rule:
        v.problems += check_assign(rule["Assign"], child(path, "Assign"), language)
    if "Next" in rule:
        scope.add_edge(name, rule["Next"], child(path, "Next"))


def _jsonata_rule(v: Walker, rule: dict[str, Any], path: str) -> None:
    """A JSONata choice rule: a Condition (boolean or JSONata) and Next; Assign/Output optional."""
    for key in rule:
        if key not in JSONATA_RULE_FIELDS:
            v.report(child(path, key), f"field '{key}' is not supported in a JSONata choice rule; allowed: {listing(JSONATA_RULE_FIELDS)}")
    if "Condition" not in rule:
        v.report(path, "a JSONata choice rule requires 'Condition' (true/false or a JSONata expression '{% ... %}')")
    elif not (isinstance(rule["Condition"], bool) or is_jsonata(rule["Condition"])):
        v.report(child(path, "Condition"), "'Condition' must be true/false or a JSONata expression '{% ... %}'")
    if "Next" not in rule:
        v.report(path, "a choice rule in 'Choices' requires 'Next'")
    elif not isinstance(rule["Next"], str):
        v.report(child(path, "Next"), "'Next' must be a string naming a state")


def _retry_and_catch(v: Walker, scope: Scope, name: str, state: dict[str, Any], path: str, language: str) -> None:
    if "Retry" in state:
        _retriers(v, state["Retry"], child(path, "Retry"))
    if "Catch" in state:
        _catchers(v, scope, name, state["Catch"], child(path, "Catch"), language)


def _retriers(v: Walker, retriers: Any, path: str) -> None:
    if not isinstance(retriers, list):
        v.report(path, "'Retry' must be an array of retriers")
        return
    for index, retrier in enumerate(retriers):
        retrier_path = item(path, index)
        if not isinstance(retrier, dict):
            v.report(retrier_path, "a retrier must be a JSON object with 'ErrorEquals'")
            continue
        _unknown_fields(v, retrier, retrier_path, RETRIER_FIELDS, "retrier")
        v.problems += check_error_equals(retrier.get("ErrorEquals"), child(retrier_path, "ErrorEquals"), last=index == len(retriers) - 1)
        for key, check in RETRIER_CHECKS.items():
            if key in retrier:
                v.problems += check(retrier[key], child(retrier_path, key), JSONPATH)


def _catchers(v: Walker, scope: Scope, name: str, catchers: Any, path: str, language: str) -> None:
    if not isinstance(catchers, list):
        v.report(path, "'Catch' must be an array of catchers")
        return
    for index, catcher in enumerate(catchers):
        catcher_path = item(path, index)
        if not isinstance(catcher, dict):
            v.report(catcher_path, "a catcher must be a JSON object with 'ErrorEquals' and 'Next'")
            continue
        _unknown_fields(v, catcher, catcher_path, CATCHER_FIELDS, "catcher")
        v.problems += check_error_equals(catcher.get("ErrorEquals"), child(catcher_path, "ErrorEquals"), last=index == len(catchers) - 1)
        if "Next" not in catcher:
            v.report(catcher_path, "a catcher requires 'Next': the state to go to when it matches")
        elif not isinstance(catcher["Next"], str):
            v.report(child(catcher_path, "Next"), "'Next' must be a string naming a state")
        else:
            scope.add_edge(name, catcher["Next"], child(catcher_path, "Next"))
        for key in ("ResultPath", "Output"):
            if key not in catcher:
                continue
            if key in (JSONPATH_ONLY if language == JSONATA else JSONATA_ONLY):
                v.report(child(catcher_path, key), wrong_language(key, language))
            else:
                v.problems += FIELD_CHECKS[key](catcher[key], child(catcher_path, key), language)
        if "Assign" in catcher:
            v.problems += check_assign(catcher["Assign"], child(catcher_path, "Assign"), language)
        if "Comment" in catcher:
            v.problems += check_string(catcher["Comment"], child(catcher_path, "Comment"), language)


def _unknown_fields(v: Walker, node: dict[str, Any], path: str, allowed: frozenset[str], what: str) -> None:
    for key in node:
        if key not in allowed:
            v.report(child(path, key), f"field '{key}' is not supported in a {what}; allowed: {listing(allowed)}")


TypeCheck = Callable[[Walker, Scope, str, dict[str, Any], str, str], None]

# Cross-field rules and nested structure of each state type.
TYPE_CHECKS: Final[Mapping[str, TypeCheck]] = {
    "Task": check_task,
    "Choice": check_choice,
    "Wait": check_wait,
    "Parallel": check_parallel,
    "Map": check_map,
}

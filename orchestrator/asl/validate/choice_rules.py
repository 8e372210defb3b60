"""What AWS refuses in a JSONPath Choice rule, found before a definition is accepted: one
comparison operator per data test, a Variable that is a path, operands of the operator's type,
non-empty And/Or arrays, `Next` on top-level rules only (the semantics: `orchestrator/asl/choice.py`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.asl import jsonpath

# --- value predicates -------------------------------------------------------------------------
from orchestrator.asl.choice import BOOLEAN_OPERATORS, COMPARISON_OPERATORS, OPERATORS
from orchestrator.asl.errors import Problem


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, Sequence):
        return "an array"
    return type(value).__name__


def validate_rule(rule: Any, path: str, *, top_level: bool) -> list[Problem]:
    """Every fault AWS refuses in one Choice rule at JSON path `path`, nested rules included.

    `top_level` is True for an element of `Choices` (it needs `Next`; the caller checks that the
    target exists) and False inside And / Or / Not (where `Next` is refused). `Assign` on a
    top-level rule is allowed here; its content is the caller's to check.
    """
    if not isinstance(rule, Mapping):
        return [Problem(path, f"a Choice rule must be an object, not {_json_type(rule)}")]
    kinds = [str(key) for key in rule if key in COMPARISON_OPERATORS or key in BOOLEAN_OPERATORS]
    problems = _check_next(rule, path, top_level)
    problems += _check_kind_count(kinds, path)
    problems += _check_variable(rule, path, kinds)
    for kind in kinds:
        problems += _check_operand(kind, rule[kind], f"{path}.{kind}")
    problems += _check_other_fields(rule, path, top_level)
    return problems


def _check_next(rule: Mapping[str, Any], path: str, top_level: bool) -> list[Problem]:
    where = f"{path}.Next"
    if not top_level:
        if "Next" in rule:
            message = "Next is only allowed on a top-level Choice rule, not inside And, Or or Not"
            return [Problem(where, message)]
        return []
    if "Next" not in rule:
        return [Problem(where, "a top-level Choice rule needs Next")]
    if not isinstance(rule["Next"], str) or not rule["Next"]:
        shown = _json_type(rule["Next"])
        return [Problem(where, f"Next must be a state name (a non-empty string), not {shown}")]
    return []


def _check_kind_count(kinds: list[str], path: str) -> list[Problem]:
    if len(kinds) == 1:
        return []
    wanted = "exactly one of a comparison operator (such as StringEquals), And, Or or Not"
    if not kinds:
        return [Problem(path, f"a Choice rule needs {wanted}")]
    return [Problem(path, f"a Choice rule takes {wanted}; found {', '.join(kinds)}")]


def _check_variable(rule: Mapping[str, Any], path: str, kinds: list[str]) -> list[Problem]:
    where = f"{path}.Variable"
    compares = any(kind in COMPARISON_OPERATORS for kind in kinds)
    if "Variable" not in rule:
        if not compares:
            return []
        return [Problem(where, "a comparison needs Variable, the path of the value to test")]
    if kinds and not compares:
        message = "Variable is only allowed with a comparison operator, not with And, Or or Not"
        return [Problem(where, message)]
    try:
        jsonpath.check(rule["Variable"])
    except jsonpath.PathSyntaxError as exc:
        return [Problem(where, f"Variable must be a valid JSONPath: {exc}")]
    return []


def _check_operand(kind: str, operand: Any, where: str) -> list[Problem]:
    if kind in ("And", "Or"):
        return _check_rule_array(kind, operand, where)
    if kind == "Not":
        if not isinstance(operand, Mapping):
            return [Problem(where, f"Not takes one Choice rule (an object), not {_json_type(operand)}")]
        return validate_rule(operand, where, top_level=False)
    op = OPERATORS[kind]
    if op.operand_is_path:
        try:
            jsonpath.check(operand)
        except jsonpath.PathSyntaxError as exc:
            return [Problem(where, f"{kind} takes a JSONPath: {exc}")]
        return []
    if not op.operand_ok(operand):
        shown = repr(operand) if isinstance(operand, str) else _json_type(operand)
        return [Problem(where, f"{kind} takes {op.operand_kind}, not {shown}")]
    return []


def _check_rule_array(kind: str, operand: Any, where: str) -> list[Problem]:
    if not isinstance(operand, list) or not operand:
        return [Problem(where, f"{kind} takes a non-empty array of Choice rules")]
    problems: list[Problem] = []
    for index, nested in enumerate(operand):
        problems += validate_rule(nested, f"{where}[{index}]", top_level=False)
    return problems


def _check_other_fields(rule: Mapping[str, Any], path: str, top_level: bool) -> list[Problem]:
    problems: list[Problem] = []
    for key in rule:
        if key in COMPARISON_OPERATORS or key in BOOLEAN_OPERATORS or key in ("Variable", "Next"):
            continue  # checked above
        where = f"{path}.{key}"
        if key == "Comment":
            if not isinstance(rule[key], str):
                problems.append(Problem(where, f"Comment must be a string, not {_json_type(rule[key])}"))
        elif key == "Assign":
            if not top_level:
                problems.append(Problem(where, "Assign is only allowed on a top-level Choice rule"))
        elif key == "Condition":
            message = (
                "Condition is a JSONata field; a JSONPath Choice rule uses Variable and a comparison operator"
            )
            problems.append(Problem(where, message))
        else:
            problems.append(Problem(where, f"unknown field {key!r} in a Choice rule"))
    return problems

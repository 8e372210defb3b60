"""Checks of the expressions a definition holds: JSONPaths (ASL spec, "Paths", "Reference Paths"),
intrinsic function calls, payload templates whose `.$` fields hold either (Parameters,
ResultSelector, ItemSelector, Credentials, Assign), variable names, and JSONata `{% %}` strings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from orchestrator.asl import intrinsics, jsonata, jsonpath
from orchestrator.asl.errors import Problem
from orchestrator.asl.validate.problems import child, item, name_of
from orchestrator.asl.validate.tables import (
    JSONATA,
    JSONATA_SCALARS,
    JSONATA_TEMPLATES,
    JSONPATH,
    MAX_NAME_LENGTH,
    RESULT_FIELDS,
    RESULT_STATES,
)


def is_jsonata(value: Any) -> bool:
    """A JSONata expression string: `{% ... %}` (not evaluated here)."""
    return isinstance(value, str) and len(value) >= 4 and value.startswith("{%") and value.endswith("%}")


def is_dynamic(key: object) -> bool:
    """A payload-template key whose value is evaluated: it ends in `.$`."""
    return isinstance(key, str) and key.endswith(".$")


def check_path(value: Any, path: str, language: str, *, nullable: bool = False, reference: bool = False) -> list[Problem]:
    """A JSONPath (input `$`, context `$$` or variable `$name`); a Reference Path if `reference`."""
    name = name_of(path)
    if value is None and nullable:
        return []
    kind = "a reference path (no wildcards, filters or slices)" if reference else "a JSONPath"
    if nullable:
        kind += " or null"
    if not isinstance(value, str):
        return [Problem(path, f"'{name}' must be {kind}, not {value!r}")]
    try:
        jsonpath.check(value)
        definite = jsonpath.is_definite(value)
    except jsonpath.PathSyntaxError as exc:
        return [Problem(path, f"'{name}' must be {kind}: {exc}")]
    if reference and not definite:
        return [Problem(path, f"'{name}' must be {kind}: {value!r} can select several values")]
    return []


def check_nullable_path(value: Any, path: str, language: str) -> list[Problem]:
    return check_path(value, path, language, nullable=True)


def check_reference_path(value: Any, path: str, language: str) -> list[Problem]:
    return check_path(value, path, language, reference=True)


def check_result_path(value: Any, path: str, language: str) -> list[Problem]:
    """ResultPath writes into the state input: a reference path, never the context or a variable (ASL spec)."""
    problems = check_path(value, path, language, nullable=True, reference=True)
    if problems or value is None:
        return problems
    kind, _, _ = jsonpath.split_prefix(value)
    if kind != "input":
        where = "the context object ($$)" if kind == "context" else "a variable"
        return [Problem(path, f"'{name_of(path)}' cannot write into {where}; it must be a path into the state input starting with '$'")]
    return []


def check_expression(value: Any, path: str, language: str) -> list[Problem]:
    """The value of a `.$` field, ErrorPath or CausePath: a JSONPath or an intrinsic function call."""
    name = name_of(path)
    message = f"the value of '{name}' must be a valid JSONPath or a valid intrinsic function call"
    if not isinstance(value, str):
        return [Problem(path, f"{message}, not {value!r}")]
    try:
        if value.startswith("$"):
            jsonpath.check(value)
        elif intrinsics.is_intrinsic(value) or value.startswith("States."):
            intrinsics.check(value)  # a malformed call gets the parser's reason
        else:
            return [Problem(path, f"{message}, not {value!r}")]
    except (jsonpath.PathSyntaxError, intrinsics.IntrinsicSyntaxError) as exc:
        return [Problem(path, f"{message}: {exc}")]
    return []


def check_reference_or_intrinsic(value: Any, path: str, language: str) -> list[Problem]:
    """ErrorPath / CausePath: a reference path or an intrinsic function call (ASL spec, "Fail State")."""
    if isinstance(value, str) and not value.startswith("$"):
        return check_expression(value, path, language)
    return check_reference_path(value, path, language)


def check_template_values(template: Any, path: str, language: str) -> list[Problem]:
    """In a payload template, `.$` fields hold a path or intrinsic, and no two keys clash once `.$` is stripped."""
    problems: list[Problem] = []
    for obj, obj_path in _template_objects(template, path):
        for key, value in obj.items():
            if is_dynamic(key):
                problems += check_expression(value, child(obj_path, key), language)
        stripped = [key[:-2] if is_dynamic(key) else key for key in obj]
        for duplicate in sorted({key for key in stripped if stripped.count(key) > 1}, key=str):
            problems.append(Problem(obj_path, f"field '{duplicate}' appears twice once the '.$' suffix is removed; keep one"))
    return problems


def _template_objects(template: Any, path: str) -> Iterator[tuple[dict[str, Any], str]]:
    """Every object of a payload template with its path, however deeply nested (not inside `.$` values)."""
    if isinstance(template, dict):
        yield template, path
        for key, value in template.items():
            if not is_dynamic(key):
                yield from _template_objects(value, child(path, key))
    elif isinstance(template, list):
        for index, element in enumerate(template):
            yield from _template_objects(element, item(path, index))


def check_payload_template(value: Any, path: str, language: str) -> list[Problem]:
    """Parameters / ResultSelector / ItemSelector (JSONPath): an object whose `.$` fields are paths or intrinsics."""
    if language == JSONATA:  # JSONata ItemSelector: any JSON, `{% %}` evaluated at run time
        return []
    if not isinstance(value, dict):
        return [Problem(path, f"'{name_of(path)}' must be a JSON object (a payload template)")]
    return check_template_values(value, path, language)


def check_credentials(value: Any, path: str, language: str) -> list[Problem]:
    if not isinstance(value, dict):
        return [Problem(path, "'Credentials' must be a JSON object")]
    return [] if language == JSONATA else check_template_values(value, path, language)


def is_variable_name(name: object) -> bool:
    """A Unicode identifier of at most 80 characters, other than the reserved `states` (ASL spec)."""
    # str.isidentifier applies UAX #31 (XID_Start then XID_Continue), also allowing a leading "_".
    return isinstance(name, str) and len(name) <= MAX_NAME_LENGTH and name.isidentifier() and name != "states"


def check_assign(value: Any, path: str, language: str) -> list[Problem]:
    """Assign: an object naming variables; in JSONPath states a `name.$` key takes a path or intrinsic."""
    if not isinstance(value, dict):
        return [Problem(path, "'Assign' must be a JSON object mapping variable names to values")]
    problems: list[Problem] = []
    for key in value:
        name = key[:-2] if language == JSONPATH and is_dynamic(key) else key
        if not is_variable_name(name):
            problems.append(Problem(child(path, key), (
                f"{name!r} is not a valid variable name: use a letter or '_' then letters, digits or '_', "
                f"at most {MAX_NAME_LENGTH} characters, and not the reserved name 'states'"
            )))
    if language == JSONPATH:
        problems += check_template_values(value, path, language)
    return problems


def check_items(value: Any, path: str, language: str) -> list[Problem]:
    """JSONata Items: a JSON array or a JSONata expression that yields one."""
    if isinstance(value, list) or is_jsonata(value):
        return []
    return [Problem(path, "'Items' must be a JSON array or a JSONata expression '{% ... %}'")]


def check_jsonata_expressions(state: dict[str, Any], path: str, kind: str) -> list[Problem]:
    """Every `{% %}` expression of a JSONata state parses and reads only the `$states` members
    its field provides; a string that opens or closes an expression but not both is refused."""
    problems: list[Problem] = []
    for key in JSONATA_TEMPLATES:
        if key in state:
            members = {"result"} if kind in RESULT_STATES and key in RESULT_FIELDS else set()
            problems += check_jsonata_template(state[key], child(path, key), frozenset(members))
    for key in JSONATA_SCALARS:
        if is_jsonata(state.get(key)):
            problems += check_jsonata_expression(state[key], child(path, key), frozenset())
    rules = state.get("Choices") if kind == "Choice" else None
    for index, rule in enumerate(rules if isinstance(rules, list) else []):
        if not isinstance(rule, dict):
            continue
        rule_path = item(child(path, "Choices"), index)
        if is_jsonata(rule.get("Condition")):
            problems += check_jsonata_expression(rule["Condition"], child(rule_path, "Condition"), frozenset())
        for key in ("Assign", "Output"):
            if key in rule:
                problems += check_jsonata_template(rule[key], child(rule_path, key), frozenset())
    catchers = state.get("Catch")
    for index, catcher in enumerate(catchers if isinstance(catchers, list) else []):
        if not isinstance(catcher, dict):
            continue
        for key in ("Assign", "Output"):
            if key in catcher:
                problems += check_jsonata_template(catcher[key], child(item(child(path, "Catch"), index), key),
                                                   frozenset({"errorOutput"}))
    return problems


def check_jsonata_template(value: Any, path: str, available: frozenset[str]) -> list[Problem]:
    """The `{% %}` strings of a JSON value at any depth (object keys are never evaluated)."""
    problems: list[Problem] = []
    if isinstance(value, dict):
        for key, member in value.items():
            problems += check_jsonata_template(member, child(path, key), available)
    elif isinstance(value, list):
        for index, element in enumerate(value):
            problems += check_jsonata_template(element, item(path, index), available)
    elif is_jsonata(value):
        problems += check_jsonata_expression(value, path, available)
    elif isinstance(value, str) and (value.startswith("{%") or value.endswith("%}")):
        problems.append(Problem(path, (
            f"{value!r} is not a JSONata expression: an expression must start with '{{%' and end with '%}}' "
            "(no spaces outside them); to keep it as a literal string, do not open or close it with them"
        )))
    return problems


def check_jsonata_expression(value: str, path: str, available: frozenset[str]) -> list[Problem]:
    """One `{% %}` string: it parses, and reads `$states.result`/`errorOutput` only where `available`."""
    try:
        members = jsonata.states_members(value)
    except jsonata.JsonataSyntaxError as exc:
        return [Problem(path, f"the JSONata expression '{value[2:-2].strip()}' does not parse: {exc}")]
    problems: list[Problem] = []
    if "result" in members and "result" not in available:
        problems.append(Problem(path, (
            "$states.result is not available here: only the Output and Assign of a Task, Parallel or Map "
            "state can read the result"
        )))
    if "errorOutput" in members and "errorOutput" not in available:
        problems.append(Problem(path, (
            "$states.errorOutput is not available here: only a Catcher's Output and Assign can read it"
        )))
    return problems

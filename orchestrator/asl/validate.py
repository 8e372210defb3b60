"""Static checks of a state machine definition: refuse what AWS Step Functions refuses.

`validate` walks an already-decoded definition and returns every fault it finds, each with the
JSON path of the fault, so a user can fix them all in one go. The rules come from the Amazon
States Language specification (states-language.net) and the Step Functions developer guide;
where the spec leaves a choice to the interpreter, we follow what AWS's CreateStateMachine /
ValidateStateMachineDefinition was observed to refuse (test docstrings cite the source).

Layout: field tables (which fields each state type allows, which fields belong to one query
language), pure per-field value checks, then `_Validator`, which walks scopes (the top-level
machine, each Parallel branch, each Map processor) and checks the transition graph of each.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from orchestrator.asl import choice, errors, intrinsics, jsonata, jsonpath
from orchestrator.asl.errors import Problem

JSONPATH: Final = "JSONPath"
JSONATA: Final = "JSONata"
QUERY_LANGUAGES: Final = (JSONPATH, JSONATA)

MAX_NAME_LENGTH: Final = 80  # state and variable names (ASL spec, "States"; "State Machine Variables")

# ---------------------------------------------------------------------------------------------
# Field tables
# ---------------------------------------------------------------------------------------------

TOP_LEVEL_FIELDS: Final = frozenset({"StartAt", "States", "Comment", "Version", "TimeoutSeconds", "QueryLanguage"})
BRANCH_FIELDS: Final = frozenset({"StartAt", "States", "Comment"})
# ItemProcessor (and the deprecated Iterator) may not set QueryLanguage: its states inherit the
# machine's language, not the Map state's (measured on AWS, floci-io/floci#2968).
PROCESSOR_FIELDS: Final = frozenset({"StartAt", "States", "Comment", "ProcessorConfig"})

COMMON_FIELDS: Final = frozenset({"Type", "Comment", "QueryLanguage"})
_IO: Final = frozenset({"InputPath", "OutputPath", "Output"})
_FLOW: Final = frozenset({"Next", "End"})
_RESULT: Final = frozenset({"Parameters", "ResultSelector", "ResultPath", "Retry", "Catch", "Assign"})


@dataclass(frozen=True)
class StateSpec:
    """What one state type allows: `allowed` besides COMMON_FIELDS, and what it requires."""

    allowed: frozenset[str]
    required: tuple[str, ...] = ()
    # Pass/Task/Wait/Parallel/Map continue somewhere: exactly one of "Next" or "End": true.
    flows: bool = False


# The ASL spec's "Table of State Types and Fields" (JSONPath and JSONata), plus each type's own
# fields. Fields of the other query language are listed here too and refused separately, so the
# message can say which language they belong to.
STATE_SPECS: Final[Mapping[str, StateSpec]] = {
    "Pass": StateSpec(_IO | _FLOW | {"Parameters", "ResultPath", "Result", "Assign"}, flows=True),
    "Task": StateSpec(
        _IO | _FLOW | _RESULT
        | {
            "Resource", "Credentials", "Arguments",
            "TimeoutSeconds", "TimeoutSecondsPath", "HeartbeatSeconds", "HeartbeatSecondsPath",
        },
        required=("Resource",),
        flows=True,
    ),
    "Choice": StateSpec(_IO | {"Choices", "Default", "Assign"}, required=("Choices",)),
    "Wait": StateSpec(_IO | _FLOW | {"Seconds", "SecondsPath", "Timestamp", "TimestampPath", "Assign"}, flows=True),
    "Succeed": StateSpec(_IO),
    "Fail": StateSpec(frozenset({"Error", "ErrorPath", "Cause", "CausePath"})),
    "Parallel": StateSpec(_IO | _FLOW | _RESULT | {"Branches", "Arguments"}, required=("Branches",), flows=True),
    "Map": StateSpec(
        _IO | _FLOW | _RESULT
        | {
            "ItemProcessor", "Iterator", "ItemsPath", "Items", "ItemSelector", "ItemReader",
            "ItemBatcher", "ResultWriter", "Label",
            "MaxConcurrency", "MaxConcurrencyPath",
            "ToleratedFailureCount", "ToleratedFailureCountPath",
            "ToleratedFailurePercentage", "ToleratedFailurePercentagePath",
        },
        flows=True,
    ),
}

# Fields that exist only in one query language (ASL spec, "JSONPath Concepts" / "JSONata Concepts").
JSONPATH_ONLY: Final = frozenset({
    "InputPath", "OutputPath", "Parameters", "ResultSelector", "ResultPath", "Result", "ItemsPath",
    "SecondsPath", "TimestampPath", "TimeoutSecondsPath", "HeartbeatSecondsPath", "ErrorPath",
    "CausePath", "MaxConcurrencyPath", "ToleratedFailureCountPath", "ToleratedFailurePercentagePath",
})
JSONATA_ONLY: Final = frozenset({"Arguments", "Output", "Items"})

# Pairs a state may not both have: a literal value and the path (or alias) that supplies it.
EXCLUSIVE_PAIRS: Final = (
    ("TimeoutSeconds", "TimeoutSecondsPath"),
    ("HeartbeatSeconds", "HeartbeatSecondsPath"),
    ("Error", "ErrorPath"),
    ("Cause", "CausePath"),
    ("MaxConcurrency", "MaxConcurrencyPath"),
    ("ToleratedFailureCount", "ToleratedFailureCountPath"),
    ("ToleratedFailurePercentage", "ToleratedFailurePercentagePath"),
    ("ItemProcessor", "Iterator"),  # Iterator is the deprecated name of ItemProcessor
    ("ItemSelector", "Parameters"),  # in a Map, Parameters is the deprecated name of ItemSelector
)
WAIT_DURATIONS: Final = ("Seconds", "SecondsPath", "Timestamp", "TimestampPath")

# Fields of a JSONata state whose strings are evaluated when they are `{% %}` expressions: at any
# depth in these (a malformed `{%` / `%}` string is refused, as AWS's "Transforming data with
# JSONata" says an improperly opened or closed expression is a validation error) ...
JSONATA_TEMPLATES: Final = (
    "Arguments", "Output", "Assign", "Items", "ItemSelector", "Credentials", "ItemReader", "ItemBatcher",
    "ResultWriter", "Error", "Cause",
)
# ... and these scalars, whose own check already refuses a string that is not an expression.
JSONATA_SCALARS: Final = (
    "TimeoutSeconds", "HeartbeatSeconds", "Seconds", "Timestamp", "MaxConcurrency", "ToleratedFailureCount",
    "ToleratedFailurePercentage",
)
# `$states.result` exists in the Output and Assign of the states that have a result, and
# `$states.errorOutput` in a Catcher's Output and Assign (AWS developer guide, "Passing data between
# states with variables", reserved variable $states: using them elsewhere "will be caught at
# creation, update, or validation of the state machine").
RESULT_STATES: Final = frozenset({"Task", "Parallel", "Map"})
RESULT_FIELDS: Final = frozenset({"Output", "Assign"})

RETRIER_FIELDS: Final = frozenset({
    "ErrorEquals", "IntervalSeconds", "MaxAttempts", "BackoffRate", "MaxDelaySeconds", "JitterStrategy", "Comment",
})
CATCHER_FIELDS: Final = frozenset({"ErrorEquals", "Next", "ResultPath", "Assign", "Output", "Comment"})
JSONATA_RULE_FIELDS: Final = frozenset({"Condition", "Next", "Assign", "Output", "Comment"})
PROCESSOR_CONFIG: Final[Mapping[str, frozenset[str]]] = {
    "Mode": frozenset({"INLINE", "DISTRIBUTED"}),
    "ExecutionType": frozenset({"STANDARD", "EXPRESS"}),
}
JITTER_STRATEGIES: Final = frozenset({"FULL", "NONE"})

# Error names AWS defines under the reserved "States." prefix (ASL spec Appendix A; Step Functions
# developer guide, "Error names", which adds States.Runtime and the HTTP Task errors).
RESERVED_ERRORS: Final = frozenset({
    errors.ALL, errors.TASK_FAILED, errors.TIMEOUT, errors.HEARTBEAT_TIMEOUT, errors.RUNTIME,
    errors.DATA_LIMIT_EXCEEDED, errors.INTRINSIC_FAILURE, errors.RESULT_PATH_MATCH_FAILURE,
    errors.PARAMETER_PATH_FAILURE, errors.BRANCH_FAILED, errors.NO_CHOICE_MATCHED, errors.PERMISSIONS,
    errors.EXCEED_TOLERATED_FAILURE_THRESHOLD, errors.ITEM_READER_FAILED, errors.RESULT_WRITER_FAILED,
    errors.QUERY_EVALUATION_ERROR, "States.Http.Socket",
})
_HTTP_STATUS_ERROR: Final = re.compile(r"States\.Http\.StatusCode\.[1-5][0-9][0-9]")

# Statelint's schema caps these integers below 99999999.
MAX_SECONDS: Final = 99999999

# ---------------------------------------------------------------------------------------------
# Paths of faults
# ---------------------------------------------------------------------------------------------

_PLAIN_KEY: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def child(path: str, key: object) -> str:
    """The JSON path of `key` inside the object at `path`: `$.a.b`, or `$.a['b c']` when needed."""
    text = str(key)  # YAML may decode a key as a number
    if _PLAIN_KEY.fullmatch(text):
        return f"{path}.{text}"
    escaped = text.replace("\\", "\\\\").replace("'", "\\'")
    return f"{path}['{escaped}']"


def _is_dynamic(key: object) -> bool:
    """A payload-template key whose value is evaluated: it ends in `.$`."""
    return isinstance(key, str) and key.endswith(".$")


def item(path: str, index: int) -> str:
    return f"{path}[{index}]"


# ---------------------------------------------------------------------------------------------
# Value checks: each takes (value, path of the value, query language) and returns its problems
# ---------------------------------------------------------------------------------------------

Check = Callable[[Any, str, str], list[Problem]]


def is_jsonata(value: Any) -> bool:
    """A JSONata expression string: `{% ... %}` (not evaluated here)."""
    return isinstance(value, str) and len(value) >= 4 and value.startswith("{%") and value.endswith("%}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _name_of(path: str) -> str:
    """The field name at the end of a path, for messages."""
    match = re.search(r"(?:\.([^.\[\]]+)|\['((?:[^'\\]|\\.)*)'\])$", path)
    if not match:
        return path
    return match.group(1) if match.group(1) is not None else re.sub(r"\\(.)", r"\1", match.group(2))


def check_string(value: Any, path: str, language: str) -> list[Problem]:
    if isinstance(value, str):
        return []
    return [Problem(path, f"'{_name_of(path)}' must be a string")]


def check_object(value: Any, path: str, language: str) -> list[Problem]:
    if isinstance(value, dict):
        return []
    return [Problem(path, f"'{_name_of(path)}' must be a JSON object")]


def check_any(value: Any, path: str, language: str) -> list[Problem]:
    """JSONata Output/Arguments/ItemSelector: any JSON, with `{% %}` strings evaluated at run time."""
    return []


def integer_check(minimum: int, maximum: int | None = None) -> Check:
    """A check for an integer field (in JSONata states also a `{% %}` expression)."""
    kind = "a positive integer" if minimum == 1 else "a non-negative integer"
    if maximum is not None:
        kind += f" below {maximum}"

    def check(value: Any, path: str, language: str) -> list[Problem]:
        if language == JSONATA and is_jsonata(value):
            return []
        if _is_int(value) and value >= minimum and (maximum is None or value < maximum):
            return []
        alternative = " or a JSONata expression '{% ... %}'" if language == JSONATA else ""
        return [Problem(path, f"'{_name_of(path)}' must be {kind}{alternative}, not {value!r}")]

    return check


def check_percentage(value: Any, path: str, language: str) -> list[Problem]:
    if language == JSONATA and is_jsonata(value):
        return []
    if _is_number(value) and 0 <= value <= 100:
        return []
    return [Problem(path, f"'{_name_of(path)}' must be a number from 0 to 100, not {value!r}")]


def check_path(value: Any, path: str, language: str, *, nullable: bool = False, reference: bool = False) -> list[Problem]:
    """A JSONPath (input `$`, context `$$` or variable `$name`); a Reference Path if `reference`."""
    name = _name_of(path)
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
        return [Problem(path, f"'{_name_of(path)}' cannot write into {where}; it must be a path into the state input starting with '$'")]
    return []


def check_expression(value: Any, path: str, language: str) -> list[Problem]:
    """The value of a `.$` field, ErrorPath or CausePath: a JSONPath or an intrinsic function call."""
    name = _name_of(path)
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
            if _is_dynamic(key):
                problems += check_expression(value, child(obj_path, key), language)
        stripped = [key[:-2] if _is_dynamic(key) else key for key in obj]
        for duplicate in sorted({key for key in stripped if stripped.count(key) > 1}, key=str):
            problems.append(Problem(obj_path, f"field '{duplicate}' appears twice once the '.$' suffix is removed; keep one"))
    return problems


def _template_objects(template: Any, path: str) -> Iterator[tuple[dict[str, Any], str]]:
    """Every object of a payload template with its path, however deeply nested (not inside `.$` values)."""
    if isinstance(template, dict):
        yield template, path
        for key, value in template.items():
            if not _is_dynamic(key):
                yield from _template_objects(value, child(path, key))
    elif isinstance(template, list):
        for index, element in enumerate(template):
            yield from _template_objects(element, item(path, index))


def check_payload_template(value: Any, path: str, language: str) -> list[Problem]:
    """Parameters / ResultSelector / ItemSelector (JSONPath): an object whose `.$` fields are paths or intrinsics."""
    if language == JSONATA:  # JSONata ItemSelector: any JSON, `{% %}` evaluated at run time
        return []
    if not isinstance(value, dict):
        return [Problem(path, f"'{_name_of(path)}' must be a JSON object (a payload template)")]
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
        name = key[:-2] if language == JSONPATH and _is_dynamic(key) else key
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


_RFC3339: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-](\d{2}):(\d{2}))"
)


def is_timestamp(value: str) -> bool:
    """RFC 3339 with an uppercase 'T' and 'Z' (ASL spec, "Timestamps"), and a real date and time."""
    match = _RFC3339.fullmatch(value)
    if not match:
        return False
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    if second > 60 or (match.group(9) and (int(match.group(9)) > 23 or int(match.group(10)) > 59)):
        return False
    try:
        datetime(year, month, day, hour, minute, min(second, 59))  # RFC 3339 allows a leap second
    except ValueError:
        return False
    return True


def check_timestamp(value: Any, path: str, language: str) -> list[Problem]:
    if language == JSONATA and is_jsonata(value):
        return []
    if isinstance(value, str) and is_timestamp(value):
        return []
    return [Problem(path, f"'Timestamp' must be an RFC 3339 timestamp such as '2016-03-14T01:59:00Z', not {value!r}")]


_URI: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")


def check_resource(value: Any, path: str, language: str) -> list[Problem]:
    """A Task's Resource is a URI: an ARN (`arn:aws:...`) or a Baton resource (`baton:...`)."""
    if isinstance(value, str) and _URI.fullmatch(value):
        return []
    return [Problem(path, f"'Resource' must be a URI such as 'arn:aws:states:::lambda:invoke' or 'baton:fn:NAME', not {value!r}")]


def check_sub_config(value: Any, path: str, language: str) -> list[Problem]:
    """ItemReader / ResultWriter: an object naming a Resource; Parameters is a payload template."""
    problems = check_object(value, path, language)
    if problems:
        return problems
    if "Resource" not in value:
        problems.append(Problem(path, f"'{_name_of(path)}' requires a 'Resource'"))
    else:
        problems += check_resource(value["Resource"], child(path, "Resource"), language)
    if "Parameters" in value:
        problems += check_payload_template(value["Parameters"], child(path, "Parameters"), language)
    return problems


def check_batcher(value: Any, path: str, language: str) -> list[Problem]:
    problems = check_object(value, path, language)
    if not problems and "BatchInput" in value:
        problems += check_payload_template(value["BatchInput"], child(path, "BatchInput"), language)
    return problems


_positive = integer_check(1)
_non_negative = integer_check(0)

# How each field's value is checked. Fields that carry structure (Type, Next, End, Choices,
# Default, Branches, ItemProcessor, Iterator, Retry, Catch, QueryLanguage) are walked by _Validator.
FIELD_CHECKS: Final[Mapping[str, Check]] = {
    "Comment": check_string,
    "InputPath": check_nullable_path,
    "OutputPath": check_nullable_path,
    "ResultPath": check_result_path,
    "Parameters": check_payload_template,
    "ResultSelector": check_payload_template,
    "ItemSelector": check_payload_template,
    "Result": check_any,
    "Arguments": check_any,
    "Output": check_any,
    "Assign": check_assign,
    "Resource": check_resource,
    "Credentials": check_credentials,
    "TimeoutSeconds": integer_check(1, MAX_SECONDS),
    "HeartbeatSeconds": integer_check(1, MAX_SECONDS),
    "TimeoutSecondsPath": check_reference_path,
    "HeartbeatSecondsPath": check_reference_path,
    "Seconds": _non_negative,
    "SecondsPath": check_reference_path,
    "Timestamp": check_timestamp,
    "TimestampPath": check_reference_path,
    "Error": check_string,
    "Cause": check_string,
    "ErrorPath": check_reference_or_intrinsic,
    "CausePath": check_reference_or_intrinsic,
    "Items": check_items,
    "ItemsPath": check_reference_path,
    "ItemReader": check_sub_config,
    "ResultWriter": check_sub_config,
    "ItemBatcher": check_batcher,
    "Label": check_string,
    "MaxConcurrency": _non_negative,
    "MaxConcurrencyPath": check_reference_path,
    "ToleratedFailureCount": _non_negative,
    "ToleratedFailureCountPath": check_reference_path,
    "ToleratedFailurePercentage": check_percentage,
    "ToleratedFailurePercentagePath": check_reference_path,
}


def check_error_equals(value: Any, path: str, *, last: bool) -> list[Problem]:
    """ErrorEquals: a non-empty array of error names; States.ALL alone and in the last retrier/catcher."""
    if not isinstance(value, list) or not value:
        return [Problem(path, "'ErrorEquals' must be a non-empty array of error names")]
    problems: list[Problem] = []
    for index, name in enumerate(value):
        name_path = item(path, index)
        if not isinstance(name, str):
            problems.append(Problem(name_path, f"an error name must be a string, not {name!r}"))
        elif name == errors.ALL:
            if len(value) > 1:
                problems.append(Problem(path, f"'{errors.ALL}' must appear alone in 'ErrorEquals'"))
            if not last:
                problems.append(Problem(path, f"'{errors.ALL}' may only appear in the last retrier or catcher"))
        elif name.startswith("States.") and name not in RESERVED_ERRORS and not _HTTP_STATUS_ERROR.fullmatch(name):
            problems.append(Problem(name_path, (
                f"{name!r} is not an error name Step Functions defines; the 'States.' prefix is reserved "
                f"(e.g. States.ALL, States.TaskFailed, States.Timeout)"
            )))
    return problems


# ---------------------------------------------------------------------------------------------
# The walk
# ---------------------------------------------------------------------------------------------


@dataclass
class _Scope:
    """One `States` object: the top-level machine, a Parallel branch or a Map processor.

    Transitions cannot leave a scope (ASL spec, "Parallel State" / "Map State"), so targets and
    reachability are checked per scope.
    """

    path: str  # the path of the `States` object
    states: dict[str, Any]
    edges: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # state -> [(target, path)]

    def add_edge(self, source: str, target: Any, path: str) -> None:
        if isinstance(target, str):
            self.edges.setdefault(source, []).append((target, path))


@dataclass
class _Validator:
    problems: list[Problem] = field(default_factory=list)
    machine_language: str = JSONPATH  # nested scopes inherit this, not their Map/Parallel's language
    seen_names: dict[str, str] = field(default_factory=dict)  # state name -> path of first definition

    def report(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    # -- machines and scopes ------------------------------------------------------------------

    def top_level(self, definition: Any) -> None:
        if not isinstance(definition, dict):
            self.report("$", "the definition must be a JSON object with 'StartAt' and 'States'")
            return
        language = definition.get("QueryLanguage", JSONPATH)
        if language in QUERY_LANGUAGES:
            self.machine_language = language
        else:
            self.report("$.QueryLanguage", f"'QueryLanguage' must be 'JSONPath' or 'JSONata', not {language!r}")
        if "Version" in definition and definition["Version"] != "1.0":
            self.report("$.Version", f"'Version' must be \"1.0\", not {definition['Version']!r}")
        if "TimeoutSeconds" in definition:
            self.problems += integer_check(1, MAX_SECONDS)(definition["TimeoutSeconds"], "$.TimeoutSeconds", JSONPATH)
        self.machine(definition, "$", TOP_LEVEL_FIELDS, "state machine")

    def machine(self, node: Any, path: str, allowed: frozenset[str], what: str) -> None:
        """A state machine or nested one (branch, processor): StartAt, States, then its graph."""
        if not isinstance(node, dict):
            self.report(path, f"a {what} must be a JSON object with 'StartAt' and 'States'")
            return
        for key in node:
            if key not in allowed:
                self.report(child(path, key), f"field '{key}' is not supported in a {what}; allowed: {_listing(allowed)}")
        if "Comment" in node:
            self.problems += check_string(node["Comment"], child(path, "Comment"), JSONPATH)
        if "ProcessorConfig" in node and "ProcessorConfig" in allowed:
            self.processor_config(node["ProcessorConfig"], child(path, "ProcessorConfig"))
        start_at = node.get("StartAt")
        if "StartAt" not in node:
            self.report(path, f"'StartAt' is required: the name of the first state of the {what}")
        elif not isinstance(start_at, str):
            self.report(child(path, "StartAt"), "'StartAt' must be a string naming a state")
        states = node.get("States")
        states_path = child(path, "States")
        if "States" not in node:
            self.report(path, f"'States' is required: an object of the {what}'s states")
            return
        if not isinstance(states, dict) or not states:
            self.report(states_path, "'States' must be a non-empty JSON object mapping state names to states")
            return
        scope = _Scope(states_path, states)
        for name, state in states.items():
            state_path = child(states_path, name)
            self.state_name(name, state_path)
            self.state(scope, name, state, state_path)
        self.graph(scope, start_at if isinstance(start_at, str) else None, child(path, "StartAt"))

    def state_name(self, name: object, path: str) -> None:
        if not isinstance(name, str):
            self.report(path, f"a state name must be a string, not {name!r}")
            return
        if not name:
            self.report(path, "a state name cannot be empty")
        elif len(name) > MAX_NAME_LENGTH:
            self.report(path, f"state name is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}")
        # Names are unique across the whole definition, nested scopes included (ASL spec, "States").
        if name in self.seen_names:
            self.report(path, f"state name {name!r} is already used at {self.seen_names[name]}; state names must be unique in the whole definition")
        else:
            self.seen_names[name] = path

    def graph(self, scope: _Scope, start_at: str | None, start_path: str) -> None:
        """Transition targets exist in the scope; some state ends; every state is reachable."""
        if start_at is not None and start_at not in scope.states:
            self.report(start_path, f"'StartAt' names {start_at!r}, which is not a state of this scope; states: {_listing(scope.states)}")
        for targets in scope.edges.values():
            for target, path in targets:
                if target not in scope.states:
                    self.report(path, f"no state named {target!r} in this scope (a transition cannot enter or leave a Parallel branch or Map processor)")
        if not any(_is_terminal(state) for state in scope.states.values()):
            # AWS reports only this (MISSING_END_STATE), not the reachability of each state.
            self.report(scope.path, "no state ends the workflow: give a state \"End\": true, or add a Succeed or Fail state")
            return
        if start_at is None:
            return  # reachability is meaningless without a start
        # From a StartAt naming no state nothing is reachable; AWS reports each state then too.
        reached = {start_at} & scope.states.keys()
        pending = list(reached)
        while pending:
            for target, _ in scope.edges.get(pending.pop(), []):
                if target in scope.states and target not in reached:
                    reached.add(target)
                    pending.append(target)
        for name in scope.states:
            if name not in reached:
                self.report(child(scope.path, name), f"state {name!r} is not reachable from 'StartAt' {start_at!r}; remove it or transition to it")

    # -- one state ----------------------------------------------------------------------------

    def state(self, scope: _Scope, name: Any, state: Any, path: str) -> None:
        if not isinstance(state, dict):
            self.report(path, "a state must be a JSON object with a 'Type'")
            return
        if "Type" not in state:
            self.report(path, f"'Type' is required: one of {_listing(STATE_SPECS)}")
            return
        kind = state["Type"]
        if not isinstance(kind, str) or kind not in STATE_SPECS:
            self.report(child(path, "Type"), f"unknown state type {kind!r}; use one of {_listing(STATE_SPECS)}")
            return
        spec = STATE_SPECS[kind]
        language = self.state_language(state, path)
        self.fields(state, path, kind, spec, language)
        if spec.flows:
            self.flow(scope, name, state, path, kind)
        for first, second in EXCLUSIVE_PAIRS:
            if first in state and second in state:
                self.report(path, f"a {kind} state may have '{first}' or '{second}', not both")
        type_check = _TYPE_CHECKS.get(kind)
        if type_check is not None:
            type_check(self, scope, name, state, path, language)
        if language == JSONATA:
            self.jsonata_expressions(state, path, kind)

    # -- JSONata expressions ------------------------------------------------------------------

    def jsonata_expressions(self, state: dict[str, Any], path: str, kind: str) -> None:
        """Every `{% %}` expression of a JSONata state parses and reads only the `$states` members
        its field provides; a string that opens or closes an expression but not both is refused."""
        for key in JSONATA_TEMPLATES:
            if key in state:
                members = {"result"} if kind in RESULT_STATES and key in RESULT_FIELDS else set()
                self.jsonata_template(state[key], child(path, key), frozenset(members))
        for key in JSONATA_SCALARS:
            if is_jsonata(state.get(key)):
                self.jsonata_expression(state[key], child(path, key), frozenset())
        rules = state.get("Choices") if kind == "Choice" else None
        for index, rule in enumerate(rules if isinstance(rules, list) else []):
            if not isinstance(rule, dict):
                continue
            rule_path = item(child(path, "Choices"), index)
            if is_jsonata(rule.get("Condition")):
                self.jsonata_expression(rule["Condition"], child(rule_path, "Condition"), frozenset())
            for key in ("Assign", "Output"):
                if key in rule:
                    self.jsonata_template(rule[key], child(rule_path, key), frozenset())
        catchers = state.get("Catch")
        for index, catcher in enumerate(catchers if isinstance(catchers, list) else []):
            if not isinstance(catcher, dict):
                continue
            for key in ("Assign", "Output"):
                if key in catcher:
                    self.jsonata_template(catcher[key], child(item(child(path, "Catch"), index), key),
                                          frozenset({"errorOutput"}))

    def jsonata_template(self, value: Any, path: str, available: frozenset[str]) -> None:
        """The `{% %}` strings of a JSON value at any depth (object keys are never evaluated)."""
        if isinstance(value, dict):
            for key, member in value.items():
                self.jsonata_template(member, child(path, key), available)
        elif isinstance(value, list):
            for index, element in enumerate(value):
                self.jsonata_template(element, item(path, index), available)
        elif is_jsonata(value):
            self.jsonata_expression(value, path, available)
        elif isinstance(value, str) and (value.startswith("{%") or value.endswith("%}")):
            self.report(path, (
                f"{value!r} is not a JSONata expression: an expression must start with '{{%' and end with '%}}' "
                "(no spaces outside them); to keep it as a literal string, do not open or close it with them"
            ))

    def jsonata_expression(self, value: str, path: str, available: frozenset[str]) -> None:
        """One `{% %}` string: it parses, and reads `$states.result`/`errorOutput` only where `available`."""
        try:
            members = jsonata.states_members(value)
        except jsonata.JsonataSyntaxError as exc:
            self.report(path, f"the JSONata expression '{value[2:-2].strip()}' does not parse: {exc}")
            return
        if "result" in members and "result" not in available:
            self.report(path, (
                "$states.result is not available here: only the Output and Assign of a Task, Parallel or Map "
                "state can read the result"
            ))
        if "errorOutput" in members and "errorOutput" not in available:
            self.report(path, "$states.errorOutput is not available here: only a Catcher's Output and Assign can read it")

    def state_language(self, state: dict[str, Any], path: str) -> str:
        """The state's query language; a JSONata machine cannot contain JSONPath states."""
        if "QueryLanguage" not in state:
            return self.machine_language
        language = state["QueryLanguage"]
        language_path = child(path, "QueryLanguage")
        if language not in QUERY_LANGUAGES:
            self.report(language_path, f"'QueryLanguage' must be 'JSONPath' or 'JSONata', not {language!r}")
            return self.machine_language
        if language == JSONPATH and self.machine_language == JSONATA:
            self.report(language_path, "'QueryLanguage' cannot be 'JSONPath' when the whole state machine is set to 'JSONata'")
        return str(language)

    def fields(self, state: dict[str, Any], path: str, kind: str, spec: StateSpec, language: str) -> None:
        """Unknown fields, fields of the other query language, missing required fields; then each value."""
        allowed = spec.allowed | COMMON_FIELDS
        for key, value in state.items():
            key_path = child(path, key)
            if key not in allowed:
                self.report(key_path, f"field '{key}' is not supported on a {kind} state; allowed: {_listing(allowed)}")
            elif key in (JSONPATH_ONLY if language == JSONATA else JSONATA_ONLY):
                self.report(key_path, wrong_language(key, language))
            elif key in FIELD_CHECKS:
                self.problems += FIELD_CHECKS[key](value, key_path, language)
        for key in spec.required:
            if key not in state:
                self.report(path, f"a {kind} state requires '{key}'")

    def flow(self, scope: _Scope, name: str, state: dict[str, Any], path: str, kind: str) -> None:
        """Exactly one of "Next" (a state of this scope) or "End": true."""
        end = state.get("End", False)
        if "End" in state and not isinstance(end, bool):
            self.report(child(path, "End"), "'End' must be true or false")
            end = False
        if "Next" in state:
            next_path = child(path, "Next")
            if not isinstance(state["Next"], str):
                self.report(next_path, "'Next' must be a string naming a state")
            if end is True:
                self.report(path, "a state may have 'Next' or \"End\": true, not both")
            scope.add_edge(name, state["Next"], next_path)
        elif end is not True:
            self.report(path, f"a {kind} state needs 'Next' (the state to run next) or \"End\": true")

    # -- per type -----------------------------------------------------------------------------

    # Pass, Succeed and Fail need nothing beyond the field tables and EXCLUSIVE_PAIRS.

    def state_wait(self, scope: _Scope, name: str, state: dict[str, Any], path: str, language: str) -> None:
        given = [key for key in WAIT_DURATIONS if key in state]
        if len(given) != 1:
            allowed = "'Seconds' or 'Timestamp'" if language == JSONATA else "'Seconds', 'SecondsPath', 'Timestamp' or 'TimestampPath'"
            found = f"it has {_listing(given)}" if given else "it has none"
            self.report(path, f"a Wait state needs exactly one of {allowed}; {found}")

    def state_task(self, scope: _Scope, name: str, state: dict[str, Any], path: str, language: str) -> None:
        timeout: Any = state.get("TimeoutSeconds")
        heartbeat: Any = state.get("HeartbeatSeconds")
        if _is_int(timeout) and _is_int(heartbeat) and heartbeat >= timeout:
            self.report(child(path, "HeartbeatSeconds"), f"'HeartbeatSeconds' ({heartbeat}) must be smaller than 'TimeoutSeconds' ({timeout})")
        self.retry_and_catch(scope, name, state, path, language)

    def state_parallel(self, scope: _Scope, name: str, state: dict[str, Any], path: str, language: str) -> None:
        branches = state.get("Branches")
        branches_path = child(path, "Branches")
        if "Branches" in state and (not isinstance(branches, list) or not branches):
            self.report(branches_path, "'Branches' must be a non-empty array of state machines, each with 'StartAt' and 'States'")
        elif isinstance(branches, list):
            for index, branch in enumerate(branches):
                self.machine(branch, item(branches_path, index), BRANCH_FIELDS, "Parallel branch")
        self.retry_and_catch(scope, name, state, path, language)

    def state_map(self, scope: _Scope, name: str, state: dict[str, Any], path: str, language: str) -> None:
        processors = [key for key in ("ItemProcessor", "Iterator") if key in state]
        if not processors:
            self.report(path, "a Map state requires 'ItemProcessor' (the state machine run for each item)")
        for key in processors:
            self.machine(state[key], child(path, key), PROCESSOR_FIELDS, "Map item processor")
        self.retry_and_catch(scope, name, state, path, language)

    def state_choice(self, scope: _Scope, name: str, state: dict[str, Any], path: str, language: str) -> None:
        rules = state.get("Choices")
        rules_path = child(path, "Choices")
        if "Choices" in state and (not isinstance(rules, list) or not rules):
            self.report(rules_path, "'Choices' must be a non-empty array of choice rules")
        elif isinstance(rules, list):
            for index, rule in enumerate(rules):
                self.choice_rule(scope, name, rule, item(rules_path, index), language)
        if "Default" in state:
            default_path = child(path, "Default")
            if isinstance(state["Default"], str):
                scope.add_edge(name, state["Default"], default_path)
            else:
                self.report(default_path, "'Default' must be a string naming a state")

    def choice_rule(self, scope: _Scope, name: str, rule: Any, path: str, language: str) -> None:
        if not isinstance(rule, dict):
            self.report(path, "a choice rule must be a JSON object")
            return
        if language == JSONATA:
            self.jsonata_rule(rule, path)
        else:
            # choice.py checks the operators, Next and Condition; Output is a query-language matter.
            if "Output" in rule:
                self.report(child(path, "Output"), wrong_language("Output", JSONPATH))
            operators = {key: value for key, value in rule.items() if key != "Output"}
            self.problems += choice.validate_rule(operators, path, top_level=True)
        if "Assign" in rule:
            self.problems += check_assign(rule["Assign"], child(path, "Assign"), language)
        if "Next" in rule:
            scope.add_edge(name, rule["Next"], child(path, "Next"))

    def jsonata_rule(self, rule: dict[str, Any], path: str) -> None:
        """A JSONata choice rule: a Condition (boolean or JSONata) and Next; Assign/Output optional."""
        for key in rule:
            if key not in JSONATA_RULE_FIELDS:
                self.report(child(path, key), f"field '{key}' is not supported in a JSONata choice rule; allowed: {_listing(JSONATA_RULE_FIELDS)}")
        if "Condition" not in rule:
            self.report(path, "a JSONata choice rule requires 'Condition' (true/false or a JSONata expression '{% ... %}')")
        elif not (isinstance(rule["Condition"], bool) or is_jsonata(rule["Condition"])):
            self.report(child(path, "Condition"), "'Condition' must be true/false or a JSONata expression '{% ... %}'")
        if "Next" not in rule:
            self.report(path, "a choice rule in 'Choices' requires 'Next'")
        elif not isinstance(rule["Next"], str):
            self.report(child(path, "Next"), "'Next' must be a string naming a state")

    def retry_and_catch(self, scope: _Scope, name: str, state: dict[str, Any], path: str, language: str) -> None:
        if "Retry" in state:
            self.retriers(state["Retry"], child(path, "Retry"))
        if "Catch" in state:
            self.catchers(scope, name, state["Catch"], child(path, "Catch"), language)

    def retriers(self, retriers: Any, path: str) -> None:
        if not isinstance(retriers, list):
            self.report(path, "'Retry' must be an array of retriers")
            return
        for index, retrier in enumerate(retriers):
            retrier_path = item(path, index)
            if not isinstance(retrier, dict):
                self.report(retrier_path, "a retrier must be a JSON object with 'ErrorEquals'")
                continue
            self.unknown_fields(retrier, retrier_path, RETRIER_FIELDS, "retrier")
            self.problems += check_error_equals(retrier.get("ErrorEquals"), child(retrier_path, "ErrorEquals"), last=index == len(retriers) - 1)
            for key, check in _RETRIER_CHECKS.items():
                if key in retrier:
                    self.problems += check(retrier[key], child(retrier_path, key), JSONPATH)

    def catchers(self, scope: _Scope, name: str, catchers: Any, path: str, language: str) -> None:
        if not isinstance(catchers, list):
            self.report(path, "'Catch' must be an array of catchers")
            return
        for index, catcher in enumerate(catchers):
            catcher_path = item(path, index)
            if not isinstance(catcher, dict):
                self.report(catcher_path, "a catcher must be a JSON object with 'ErrorEquals' and 'Next'")
                continue
            self.unknown_fields(catcher, catcher_path, CATCHER_FIELDS, "catcher")
            self.problems += check_error_equals(catcher.get("ErrorEquals"), child(catcher_path, "ErrorEquals"), last=index == len(catchers) - 1)
            if "Next" not in catcher:
                self.report(catcher_path, "a catcher requires 'Next': the state to go to when it matches")
            elif not isinstance(catcher["Next"], str):
                self.report(child(catcher_path, "Next"), "'Next' must be a string naming a state")
            else:
                scope.add_edge(name, catcher["Next"], child(catcher_path, "Next"))
            for key in ("ResultPath", "Output"):
                if key not in catcher:
                    continue
                if key in (JSONPATH_ONLY if language == JSONATA else JSONATA_ONLY):
                    self.report(child(catcher_path, key), wrong_language(key, language))
                else:
                    self.problems += FIELD_CHECKS[key](catcher[key], child(catcher_path, key), language)
            if "Assign" in catcher:
                self.problems += check_assign(catcher["Assign"], child(catcher_path, "Assign"), language)
            if "Comment" in catcher:
                self.problems += check_string(catcher["Comment"], child(catcher_path, "Comment"), language)

    def processor_config(self, config: Any, path: str) -> None:
        if not isinstance(config, dict):
            self.report(path, "'ProcessorConfig' must be a JSON object")
            return
        for key, value in config.items():
            if key not in PROCESSOR_CONFIG:
                self.report(child(path, key), f"field '{key}' is not supported in 'ProcessorConfig'; allowed: {_listing(PROCESSOR_CONFIG)}")
            elif not isinstance(value, str) or value not in PROCESSOR_CONFIG[key]:
                self.report(child(path, key), f"'{key}' must be one of {_listing(PROCESSOR_CONFIG[key])}, not {value!r}")

    def unknown_fields(self, node: dict[str, Any], path: str, allowed: frozenset[str], what: str) -> None:
        for key in node:
            if key not in allowed:
                self.report(child(path, key), f"field '{key}' is not supported in a {what}; allowed: {_listing(allowed)}")


TypeCheck = Callable[[_Validator, _Scope, str, dict[str, Any], str, str], None]

# Cross-field rules and nested structure of each state type.
_TYPE_CHECKS: Final[Mapping[str, TypeCheck]] = {
    "Task": _Validator.state_task,
    "Choice": _Validator.state_choice,
    "Wait": _Validator.state_wait,
    "Parallel": _Validator.state_parallel,
    "Map": _Validator.state_map,
}


def check_backoff_rate(value: Any, path: str, language: str) -> list[Problem]:
    if _is_number(value) and value >= 1.0:
        return []
    return [Problem(path, f"'BackoffRate' must be a number of at least 1.0, not {value!r}")]


def check_jitter(value: Any, path: str, language: str) -> list[Problem]:
    if isinstance(value, str) and value in JITTER_STRATEGIES:
        return []
    return [Problem(path, f"'JitterStrategy' must be 'FULL' or 'NONE', not {value!r}")]


_RETRIER_CHECKS: Final[Mapping[str, Check]] = {
    "IntervalSeconds": integer_check(1, MAX_SECONDS),
    "MaxAttempts": integer_check(0, MAX_SECONDS),
    "BackoffRate": check_backoff_rate,
    "MaxDelaySeconds": integer_check(1),
    "JitterStrategy": check_jitter,
    "Comment": check_string,
}


def wrong_language(key: str, language: str) -> str:
    """The message for a field of the other query language (wording after AWS's own)."""
    other = JSONPATH if language == JSONATA else JSONATA
    return f"field '{key}' is only supported in {other} states, and this state's QueryLanguage is {language}"


def _is_terminal(state: Any) -> bool:
    return isinstance(state, dict) and (state.get("Type") in ("Succeed", "Fail") or state.get("End") is True)


def _listing(names: Any) -> str:
    return ", ".join(sorted(str(name) for name in names))


def validate(definition: Any) -> list[Problem]:
    """Every fault AWS would refuse in `definition` (decoded JSON/YAML), each with its JSON path.

    An empty list means the definition is valid. Problems come in document order, then each
    scope's transition checks after its states.
    """
    validator = _Validator()
    validator.top_level(definition)
    return validator.problems


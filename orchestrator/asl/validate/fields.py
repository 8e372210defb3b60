"""Checks of the other field values: strings and objects, integers and percentages, timestamps,
resources, Map sub-configurations, ErrorEquals and the retrier fields; `FIELD_CHECKS` says which
check each state field gets."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from orchestrator.asl import errors
from orchestrator.asl.errors import Problem
from orchestrator.asl.validate.expressions import (
    check_assign,
    check_credentials,
    check_items,
    check_nullable_path,
    check_payload_template,
    check_reference_or_intrinsic,
    check_reference_path,
    check_result_path,
    is_jsonata,
)
from orchestrator.asl.validate.problems import Check, child, item, listing, name_of
from orchestrator.asl.validate.tables import (
    HTTP_STATUS_ERROR,
    JITTER_STRATEGIES,
    JSONATA,
    MAX_SECONDS,
    PROCESSOR_CONFIG,
    RESERVED_ERRORS,
)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_string(value: Any, path: str, language: str) -> list[Problem]:
    if isinstance(value, str):
        return []
    return [Problem(path, f"'{name_of(path)}' must be a string")]


def check_object(value: Any, path: str, language: str) -> list[Problem]:
    if isinstance(value, dict):
        return []
    return [Problem(path, f"'{name_of(path)}' must be a JSON object")]


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
        if is_int(value) and value >= minimum and (maximum is None or value < maximum):
            return []
        alternative = " or a JSONata expression '{% ... %}'" if language == JSONATA else ""
        return [Problem(path, f"'{name_of(path)}' must be {kind}{alternative}, not {value!r}")]

    return check


def check_percentage(value: Any, path: str, language: str) -> list[Problem]:
    if language == JSONATA and is_jsonata(value):
        return []
    if _is_number(value) and 0 <= value <= 100:
        return []
    return [Problem(path, f"'{name_of(path)}' must be a number from 0 to 100, not {value!r}")]


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
        problems.append(Problem(path, f"'{name_of(path)}' requires a 'Resource'"))
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


def check_backoff_rate(value: Any, path: str, language: str) -> list[Problem]:
    if _is_number(value) and value >= 1.0:
        return []
    return [Problem(path, f"'BackoffRate' must be a number of at least 1.0, not {value!r}")]


def check_jitter(value: Any, path: str, language: str) -> list[Problem]:
    if isinstance(value, str) and value in JITTER_STRATEGIES:
        return []
    return [Problem(path, f"'JitterStrategy' must be 'FULL' or 'NONE', not {value!r}")]


RETRIER_CHECKS: Final[Mapping[str, Check]] = {
    "IntervalSeconds": integer_check(1, MAX_SECONDS),
    "MaxAttempts": integer_check(0, MAX_SECONDS),
    "BackoffRate": check_backoff_rate,
    "MaxDelaySeconds": integer_check(1),
    "JitterStrategy": check_jitter,
    "Comment": check_string,
}


_non_negative = integer_check(0)

# How each field's value is checked. Fields that carry structure (Type, Next, End, Choices,
# Default, Branches, ItemProcessor, Iterator, Retry, Catch, QueryLanguage) are walked by `walk` and `state_types`.
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
        elif name.startswith("States.") and name not in RESERVED_ERRORS and not HTTP_STATUS_ERROR.fullmatch(name):
            problems.append(Problem(name_path, (
                f"{name!r} is not an error name Step Functions defines; the 'States.' prefix is reserved "
                f"(e.g. States.ALL, States.TaskFailed, States.Timeout)"
            )))
    return problems


def check_processor_config(config: Any, path: str) -> list[Problem]:
    """A Map processor's ProcessorConfig: Mode and ExecutionType, each one of its allowed values."""
    if not isinstance(config, dict):
        return [Problem(path, "'ProcessorConfig' must be a JSON object")]
    problems: list[Problem] = []
    for key, value in config.items():
        if key not in PROCESSOR_CONFIG:
            problems.append(Problem(child(path, key), (
                f"field '{key}' is not supported in 'ProcessorConfig'; allowed: {listing(PROCESSOR_CONFIG)}"
            )))
        elif not isinstance(value, str) or value not in PROCESSOR_CONFIG[key]:
            problems.append(Problem(child(path, key), (
                f"'{key}' must be one of {listing(PROCESSOR_CONFIG[key])}, not {value!r}"
            )))
    return problems

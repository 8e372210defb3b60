"""Typed, immutable view of a validated state machine definition.

`parse_definition` turns JSON/YAML text (or an already-decoded object) into a `StateMachine`,
refusing invalid definitions with every problem found. The models keep the raw field values the
evaluator needs and distinguish an absent path field (the default `$`) from an explicit `null`
(ASL spec, "Input and Output Processing": a null InputPath/OutputPath means `{}`, a null
ResultPath discards the result).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from orchestrator.asl.errors import DefinitionError, Problem

JSONPATH = "JSONPath"
JSONATA = "JSONata"

# Sentinel for "field absent": distinct from an explicit JSON null.
ABSENT: Any = type("Absent", (), {"__repr__": lambda self: "ABSENT", "__bool__": lambda self: False})()


@dataclass(frozen=True)
class Retrier:
    error_equals: tuple[str, ...]
    interval_seconds: int = 1
    max_attempts: int = 3
    backoff_rate: float = 2.0
    max_delay_seconds: int | None = None
    jitter_strategy: str = "NONE"


@dataclass(frozen=True)
class Catcher:
    error_equals: tuple[str, ...]
    next: str
    result_path: Any = "$"  # ABSENT is normalised to "$"; None discards the error output
    output: Any = ABSENT  # JSONata
    assign: Any = ABSENT


@dataclass(frozen=True)
class State:
    """One state; `raw` keeps the definition's fields for type-specific evaluation."""

    name: str
    type: str
    raw: dict[str, Any]
    query_language: str
    next: str | None = None
    end: bool = False
    retry: tuple[Retrier, ...] = ()
    catch: tuple[Catcher, ...] = ()
    branches: tuple[StateMachine, ...] = ()  # Parallel
    processor: StateMachine | None = None  # Map

    def get(self, key: str, default: Any = ABSENT) -> Any:
        return self.raw.get(key, default)

    def has(self, key: str) -> bool:
        return key in self.raw

    @property
    def is_jsonata(self) -> bool:
        return self.query_language == JSONATA


@dataclass(frozen=True)
class StateMachine:
    """A state machine or one of its nested scopes (a Parallel branch, a Map processor)."""

    start_at: str
    states: dict[str, State]
    query_language: str = JSONPATH
    timeout_seconds: int | None = None
    comment: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    def state(self, name: str) -> State:
        return self.states[name]

    def nested(self, path: Sequence[tuple[str, int]]) -> StateMachine:
        """The machine of a nested scope: from this one, per (state, index) step, a Parallel's
        branch `index`, or (index -1) a Map's item processor."""
        machine = self
        for state_name, index in path:
            state = machine.states[state_name]
            if index >= 0:
                machine = state.branches[index]
            else:
                assert state.processor is not None
                machine = state.processor
        return machine


class _JsonLikeYamlLoader(yaml.SafeLoader):
    """YAML without implicit timestamps: a Timestamp field must stay the string the user wrote."""


_JsonLikeYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_document(text: str) -> Any:
    """Decode a definition (or input, or mock config) written as JSON or YAML."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as json_error:
        try:
            value = yaml.load(text, Loader=_JsonLikeYamlLoader)  # noqa: S506 - a SafeLoader subclass
        except yaml.YAMLError:
            raise ValueError(f"not valid JSON or YAML: {json_error}") from None
        if not isinstance(value, (dict, list)):
            raise ValueError(f"not valid JSON or YAML: {json_error}") from None
        return value


def parse_definition(source: str | dict[str, Any], *, validate: bool = True) -> StateMachine:
    """Parse and validate a definition; raise DefinitionError listing every fault."""
    document = load_document(source) if isinstance(source, str) else source
    if validate:
        from orchestrator.asl.validate import validate as validate_definition

        problems = validate_definition(document)
        if problems:
            raise DefinitionError(problems)
    elif not isinstance(document, dict):
        raise DefinitionError([Problem("$", "a state machine definition must be a JSON object")])
    return _machine(document, document.get("QueryLanguage", JSONPATH))


def _machine(raw: dict[str, Any], inherited_language: str) -> StateMachine:
    language = raw.get("QueryLanguage", inherited_language)
    states = {name: _state(name, body, language) for name, body in raw["States"].items()}
    return StateMachine(
        start_at=raw["StartAt"],
        states=states,
        query_language=language,
        timeout_seconds=raw.get("TimeoutSeconds"),
        comment=raw.get("Comment"),
        raw=raw,
    )


def _state(name: str, raw: dict[str, Any], machine_language: str) -> State:
    language = raw.get("QueryLanguage", machine_language)
    # A nested scope takes the machine's language, not its Parallel/Map state's: a state's own
    # QueryLanguage covers that state only (as measured on AWS; validate.py agrees).
    branches = tuple(_machine(b, machine_language) for b in raw.get("Branches", ()))
    processor_raw = raw.get("ItemProcessor", raw.get("Iterator"))
    processor = _machine(processor_raw, machine_language) if isinstance(processor_raw, dict) else None
    return State(
        name=name,
        type=raw["Type"],
        raw=raw,
        query_language=language,
        next=raw.get("Next"),
        end=bool(raw.get("End", False)),
        retry=tuple(_retrier(r) for r in raw.get("Retry", ())),
        catch=tuple(_catcher(c) for c in raw.get("Catch", ())),
        branches=branches,
        processor=processor,
    )


def _retrier(raw: dict[str, Any]) -> Retrier:
    return Retrier(
        error_equals=tuple(raw["ErrorEquals"]),
        interval_seconds=raw.get("IntervalSeconds", 1),
        max_attempts=raw.get("MaxAttempts", 3),
        backoff_rate=float(raw.get("BackoffRate", 2.0)),
        max_delay_seconds=raw.get("MaxDelaySeconds"),
        jitter_strategy=raw.get("JitterStrategy", "NONE"),
    )


def _catcher(raw: dict[str, Any]) -> Catcher:
    return Catcher(
        error_equals=tuple(raw["ErrorEquals"]),
        next=raw["Next"],
        result_path=raw.get("ResultPath", "$"),
        output=raw.get("Output", ABSENT),
        assign=raw.get("Assign", ABSENT),
    )

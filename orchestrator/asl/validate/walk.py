"""The walk: the top-level machine, each nested machine (Parallel branch, Map processor) as a scope
of its own, and each state in it: its name, query language and fields, its transitions, its type's
checks and, in a JSONata state, its `{% %}` expressions. Problems come in document order, then
each scope's transition checks after its states."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.asl.budget import DEFINITION_FIELD, extension_problems
from orchestrator.asl.errors import Problem
from orchestrator.asl.validate.expressions import check_jsonata_expressions
from orchestrator.asl.validate.fields import FIELD_CHECKS, check_processor_config, check_string, integer_check
from orchestrator.asl.validate.flow import Scope, check_graph, check_next_or_end
from orchestrator.asl.validate.problems import child, listing, wrong_language
from orchestrator.asl.validate.state_types import TYPE_CHECKS
from orchestrator.asl.validate.tables import (
    COMMON_FIELDS,
    EXCLUSIVE_PAIRS,
    JSONATA,
    JSONATA_ONLY,
    JSONPATH,
    JSONPATH_ONLY,
    MAX_NAME_LENGTH,
    MAX_SECONDS,
    QUERY_LANGUAGES,
    STATE_SPECS,
    TOP_LEVEL_FIELDS,
    StateSpec,
)


@dataclass
class _Validator:
    """One validation in progress: the problems so far, the machine's query language and the state
    names seen (unique across the whole definition). It is the `Walker` the type checks see."""

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
        if DEFINITION_FIELD in definition:
            # Baton's one extension of the top level (a budget): checked here, and not listed
            # among the fields the messages name, which are AWS's.
            self.problems += extension_problems(definition[DEFINITION_FIELD])
            definition = {key: value for key, value in definition.items() if key != DEFINITION_FIELD}
        self.machine(definition, "$", TOP_LEVEL_FIELDS, "state machine")

    def machine(self, node: Any, path: str, allowed: frozenset[str], what: str) -> None:
        """A state machine or nested one (branch, processor): StartAt, States, then its graph."""
        if not isinstance(node, dict):
            self.report(path, f"a {what} must be a JSON object with 'StartAt' and 'States'")
            return
        for key in node:
            if key not in allowed:
                self.report(child(path, key), f"field '{key}' is not supported in a {what}; allowed: {listing(allowed)}")
        if "Comment" in node:
            self.problems += check_string(node["Comment"], child(path, "Comment"), JSONPATH)
        if "ProcessorConfig" in node and "ProcessorConfig" in allowed:
            self.problems += check_processor_config(node["ProcessorConfig"], child(path, "ProcessorConfig"))
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
        scope = Scope(states_path, states)
        for name, state in states.items():
            state_path = child(states_path, name)
            self.state_name(name, state_path)
            self.state(scope, name, state, state_path)
        self.problems += check_graph(scope, start_at if isinstance(start_at, str) else None, child(path, "StartAt"))

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

    # -- one state ----------------------------------------------------------------------------

    def state(self, scope: Scope, name: Any, state: Any, path: str) -> None:
        if not isinstance(state, dict):
            self.report(path, "a state must be a JSON object with a 'Type'")
            return
        if "Type" not in state:
            self.report(path, f"'Type' is required: one of {listing(STATE_SPECS)}")
            return
        kind = state["Type"]
        if not isinstance(kind, str) or kind not in STATE_SPECS:
            self.report(child(path, "Type"), f"unknown state type {kind!r}; use one of {listing(STATE_SPECS)}")
            return
        spec = STATE_SPECS[kind]
        language = self.state_language(state, path)
        self.fields(state, path, kind, spec, language)
        if spec.flows:
            self.problems += check_next_or_end(scope, name, state, path, kind)
        for first, second in EXCLUSIVE_PAIRS:
            if first in state and second in state:
                self.report(path, f"a {kind} state may have '{first}' or '{second}', not both")
        type_check = TYPE_CHECKS.get(kind)
        if type_check is not None:
            type_check(self, scope, name, state, path, language)
        if language == JSONATA:
            self.problems += check_jsonata_expressions(state, path, kind)

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
                self.report(key_path, f"field '{key}' is not supported on a {kind} state; allowed: {listing(allowed)}")
            elif key in (JSONPATH_ONLY if language == JSONATA else JSONATA_ONLY):
                self.report(key_path, wrong_language(key, language))
            elif key in FIELD_CHECKS:
                self.problems += FIELD_CHECKS[key](value, key_path, language)
        for key in spec.required:
            if key not in state:
                self.report(path, f"a {kind} state requires '{key}'")


def validate(definition: Any) -> list[Problem]:
    """Every fault AWS would refuse in `definition` (decoded JSON/YAML), each with its JSON path.

    An empty list means the definition is valid. Problems come in document order, then each
    scope's transition checks after its states.
    """
    validator = _Validator()
    validator.top_level(definition)
    return validator.problems


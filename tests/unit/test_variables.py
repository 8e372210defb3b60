"""Workflow variables (`Assign`) in both query languages: where, against what, in which order,
in which scope, how big, and how the history and TestState show them.

AWS sources: the Step Functions developer guide, "Passing data between states with variables"
(cited as "AWS guide"); "[recorded]" marks behaviour recorded on AWS by a conformance case
(LocalStack's snapshot suite; the case name follows).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.unit.conftest import Err, Harness, Ok, run, single, task_state
from orchestrator.asl.decider import Environment
from orchestrator.asl.model import parse_definition
from orchestrator.local.runner import TaskResolver
from orchestrator.local.test_state import GivenOutcome, run_test_state


def jsonpath(states: dict[str, Any], start: str | None = None) -> dict[str, Any]:
    return {"StartAt": start or next(iter(states)), "States": states}


def jsonata(states: dict[str, Any], start: str | None = None) -> dict[str, Any]:
    return {"QueryLanguage": "JSONata", **jsonpath(states, start)}


def show(*names: str) -> dict[str, Any]:
    """A JSONata Pass state that outputs the named variables."""
    return {"Type": "Pass", "Output": {name: "{% $" + name + " %}" for name in names}, "End": True}


def show_path(*names: str) -> dict[str, Any]:
    """A JSONPath Pass state that outputs the named variables."""
    return {"Type": "Pass", "Parameters": {f"{name}.$": f"${name}" for name in names}, "End": True}


def exited(h: Harness, name: str) -> dict[str, Any]:
    """The details of the `*StateExited` event of state `name` (the first one)."""
    return next(e.details for e in h.history if e.type.endswith("StateExited") and e.details["name"] == name)


# ---------------------------------------------------------------------------------------------
# Assign on every state type that allows it, evaluated against the state's input or result
# ---------------------------------------------------------------------------------------------


class TestWhereAssignIsEvaluated:
    """AWS guide: Pass, Task, Map, Parallel, Choice (rules and state) and Wait take Assign, and so
    does a Catcher; in JSONPath `$` is the state's result (Pass, Task, Parallel, Map), its
    effective input (Choice, Wait) or the error output (Catcher)."""

    def test_pass_jsonpath_assigns_from_its_result(self) -> None:
        """[recorded] variables_assign/..._BASE_ASSIGN_FROM_RESULT: `$` is the Result."""
        definition = jsonpath({"P": {"Type": "Pass", "Result": {"answer": 42}, "Assign": {"a.$": "$.answer", "c": 1},
                                     "Next": "Show"}, "Show": show_path("a", "c")})
        assert run(definition, {"answer": 0}).output == {"a": 42, "c": 1}

    def test_pass_jsonata_assigns_from_its_input(self) -> None:
        definition = jsonata({"P": {"Type": "Pass", "Assign": {"a": "{% $states.input.n + 1 %}"}, "Next": "Show"},
                              "Show": show("a")})
        assert run(definition, {"n": 1}).output == {"a": 2}

    def test_task_jsonpath_assigns_from_the_selected_result(self) -> None:
        """`$` is the result after ResultSelector, before ResultPath."""
        task = task_state(ResultSelector={"text.$": "$.Payload.text"}, ResultPath="$.out",
                          Assign={"text.$": "$.text", "whole.$": "$"}, Next="Show")
        definition = jsonpath({"T": task, "Show": show_path("text", "whole")})
        h = run(definition, {}, {"T": Ok({"Payload": {"text": "hi"}})})
        assert h.output == {"text": "hi", "whole": {"text": "hi"}}

    def test_task_jsonata_assigns_from_its_result(self) -> None:
        definition = jsonata({"T": task_state(Assign={"text": "{% $states.result.Payload.text %}",
                                                      "asked": "{% $states.input.q %}"}, Next="Show"),
                              "Show": show("text", "asked")})
        assert run(definition, {"q": "why"}, {"T": Ok({"Payload": {"text": "hi"}})}).output == {"text": "hi", "asked": "why"}

    @pytest.mark.parametrize("language", ["JSONPath", "JSONata"])
    def test_parallel_and_map_assign_from_their_result_array(self, language: str) -> None:
        one = {"StartAt": "B1", "States": {"B1": {"Type": "Pass", "Result": 1, "End": True}}}
        two = {"StartAt": "B2", "States": {"B2": {"Type": "Pass", "Result": 2, "End": True}}}
        processor = {"StartAt": "Item", "States": {"Item": {"Type": "Pass", "End": True}}}
        if language == "JSONPath":
            par_assign, map_assign, end = {"branches.$": "$"}, {"items.$": "$"}, show_path("branches", "items")
        else:
            one["States"]["B1"] = {"Type": "Pass", "Output": 1, "End": True}
            two["States"]["B2"] = {"Type": "Pass", "Output": 2, "End": True}
            par_assign, map_assign, end = ({"branches": "{% $states.result %}"}, {"items": "{% $states.result %}"},
                                           show("branches", "items"))
        definition = {"QueryLanguage": language, **jsonpath({
            "Par": {"Type": "Parallel", "Branches": [one, two], "Assign": par_assign, "Next": "M"},
            "M": {"Type": "Map", "ItemProcessor": processor, "Assign": map_assign, "Next": "Show"},
            "Show": end,
        })}
        assert run(definition, {}).output == {"branches": [1, 2], "items": [1, 2]}

    def test_choice_rule_assign_wins_over_the_state_assign(self) -> None:
        """[recorded] variables_assign/test_assign_in_choice_state_CORRECT / _INCORRECT: a matched
        rule's Assign is used; the state's Assign only when the Default is taken."""
        definition = jsonpath({
            "C": {"Type": "Choice",
                  "Choices": [{"Variable": "$.n", "NumericEquals": 42, "Assign": {"status": "CORRECT"}, "Next": "Show"}],
                  "Default": "Show", "Assign": {"status": "INCORRECT", "guess.$": "$.n"}},
            "Show": {"Type": "Pass", "Parameters": {"status.$": "$status"}, "End": True},
        })
        assert run(definition, {"n": 42}).output == {"status": "CORRECT"}
        assert run(definition, {"n": 7}).output == {"status": "INCORRECT"}

    def test_choice_jsonpath_assigns_from_its_effective_input(self) -> None:
        definition = jsonpath({
            "C": {"Type": "Choice", "InputPath": "$.inner",
                  "Choices": [{"Variable": "$.n", "IsPresent": True, "Assign": {"n.$": "$.n"}, "Next": "Show"}],
                  "Default": "Show"},
            "Show": show_path("n"),
        })
        assert run(definition, {"inner": {"n": 3}}).output == {"n": 3}

    def test_choice_jsonata_rule_assign(self) -> None:
        definition = jsonata({
            "C": {"Type": "Choice", "Default": "Show", "Assign": {"tier": "standard"},
                  "Choices": [{"Condition": "{% $states.input.total > 100 %}",
                               "Assign": {"tier": "premium", "total": "{% $states.input.total %}"}, "Next": "Show"}]},
            "Show": {"Type": "Pass", "Output": {"tier": "{% $tier %}"}, "End": True},
        })
        assert run(definition, {"total": 500}).output == {"tier": "premium"}
        assert run(definition, {"total": 5}).output == {"tier": "standard"}

    @pytest.mark.parametrize("language", ["JSONPath", "JSONata"])
    def test_wait_assign(self, language: str) -> None:
        """[recorded] variables_assign/test_assign_in_wait_state."""
        value = "{% $states.input.x %}" if language == "JSONata" else None
        assign = {"waited": value} if value else {"waited.$": "$.x"}
        end = show("waited") if language == "JSONata" else show_path("waited")
        definition = {"QueryLanguage": language, **jsonpath({
            "W": {"Type": "Wait", "Seconds": 5, "Assign": assign, "Next": "Show"}, "Show": end})}
        assert run(definition, {"x": "oof"}).output == {"waited": "oof"}

    def test_catcher_jsonpath_assigns_from_the_error_output(self) -> None:
        """[recorded] variables_assign/test_assign_in_catch_state (steps module cannot import there;
        the behaviour follows AWS guide: `$` is the error output in a Catcher's Assign)."""
        catcher = {"ErrorEquals": ["States.ALL"], "Assign": {"error.$": "$.Error", "cause.$": "$.Cause"},
                   "ResultPath": None, "Next": "Show"}
        definition = jsonpath({"T": task_state(Catch=[catcher]), "Show": show_path("error", "cause")})
        assert run(definition, {}, {"T": Err("Model.Overloaded", "busy")}).output == {
            "error": "Model.Overloaded", "cause": "busy",
        }

    def test_catcher_jsonata_assigns_from_error_output_and_input(self) -> None:
        catcher = {"ErrorEquals": ["States.ALL"], "Next": "Show",
                   "Assign": {"error": "{% $states.errorOutput.Error %}", "asked": "{% $states.input.q %}"}}
        definition = jsonata({"T": task_state(Catch=[catcher]), "Show": show("error", "asked")})
        assert run(definition, {"q": "why"}, {"T": Err("Boom")}).output == {"error": "Boom", "asked": "why"}

    def test_a_failed_task_assigns_nothing(self) -> None:
        definition = jsonata({
            "Set": {"Type": "Pass", "Assign": {"x": "before"}, "Next": "T"},
            "T": task_state(Assign={"x": "after"}, Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Show"}]),
            "Show": show("x"),
        })
        assert run(definition, {}, {"T": Err()}).output == {"x": "before"}

    def test_a_retried_state_assigns_once_it_succeeds(self) -> None:
        definition = jsonata({"T": task_state(Assign={"attempt": "{% $states.context.State.RetryCount %}"},
                                              Retry=[{"ErrorEquals": ["States.ALL"]}], Next="Show"),
                              "Show": show("attempt")})
        assert run(definition, {}, {"T": [Err(), Err(), Ok()]}).output == {"attempt": 2}


# ---------------------------------------------------------------------------------------------
# $var references in JSONPath states
# ---------------------------------------------------------------------------------------------


class TestJsonPathReferences:
    """[recorded] variables_assign/test_reference_assign_BASE_REFERENCE_IN_*: `$name` in paths,
    payload templates, intrinsic functions and Choice rules."""

    def setup_method(self) -> None:
        self.set = {"Type": "Pass", "Assign": {"doc": {"title": "Notes", "words": [3, 4]}, "limit": 5},
                    "Next": "Use"}

    def run_use(self, use: dict[str, Any], execution_input: Any = None) -> Any:
        states = {"Set": self.set, "Use": use}
        for name, state in states.items():
            if state.get("Type") in ("Pass", "Task", "Wait", "Map") and "Next" not in state:
                state["End"] = True
        return run(jsonpath(states), execution_input or {}).output

    def test_in_a_payload_template(self) -> None:
        assert self.run_use({"Type": "Pass", "Parameters": {"title.$": "$doc.title", "first.$": "$doc.words[0]"}}) == {
            "title": "Notes", "first": 3,
        }

    def test_in_input_and_output_paths(self) -> None:
        assert self.run_use({"Type": "Pass", "InputPath": "$doc", "OutputPath": "$limit"}) == 5

    def test_in_an_intrinsic_function(self) -> None:
        use = {"Type": "Pass", "Parameters": {"s.$": "States.Format('{} has {} parts', $doc.title, States.ArrayLength($doc.words))"}}
        assert self.run_use(use) == {"s": "Notes has 2 parts"}

    def test_in_a_choice_rule(self) -> None:
        self.set["Next"] = "Use"
        use = {"Type": "Choice", "Choices": [{"Variable": "$limit", "NumericGreaterThan": 3, "Next": "Big"}],
               "Default": "Small"}
        states = {"Set": self.set, "Use": use, "Big": {"Type": "Pass", "Result": "big", "End": True},
                  "Small": {"Type": "Pass", "Result": "small", "End": True}}
        assert run(jsonpath(states), {}).output == "big"

    def test_in_items_path(self) -> None:
        """[recorded] variables_assign/test_reference_in_map_state_MAP_STATE_REFERENCE_IN_ITEMS_PATH."""
        processor = {"StartAt": "Item", "States": {"Item": {"Type": "Pass", "End": True}}}
        assert self.run_use({"Type": "Map", "ItemsPath": "$doc.words", "ItemProcessor": processor}) == [3, 4]

    def test_a_jsonata_state_reads_a_jsonpath_assignment_and_back(self) -> None:
        """[recorded] jsonata/test_mixed_query_language_test_variable_sampling_*: variables are
        shared by both query languages."""
        definition = jsonpath({
            "Path": {"Type": "Pass", "Assign": {"a": 1}, "Next": "Ata"},
            "Ata": {"Type": "Pass", "QueryLanguage": "JSONata", "Assign": {"b": "{% $a + 1 %}"}, "Next": "Back"},
            "Back": show_path("a", "b"),
        })
        assert run(definition).output == {"a": 1, "b": 2}

    def test_an_unknown_variable_is_a_runtime_error(self) -> None:
        h = run(single({"Type": "Pass", "Parameters": {"x.$": "$nope"}}))
        assert (h.status, h.finished.error) == ("FAILED", "States.Runtime")


# ---------------------------------------------------------------------------------------------
# Ordering: every expression of a state sees the variables from before it
# ---------------------------------------------------------------------------------------------


class TestOrder:
    def test_assignments_see_the_values_from_before_the_state(self) -> None:
        """AWS guide, evaluation order: `{"x": "{% $y %}", "y": "{% $x %}"}` swaps x and y."""
        definition = jsonata({
            "Set": {"Type": "Pass", "Assign": {"x": 3, "y": 6}, "Next": "Swap"},
            "Swap": {"Type": "Pass", "Assign": {"x": "{% $y %}", "y": "{% $x %}"}, "Next": "Show"},
            "Show": show("x", "y"),
        })
        assert run(definition).output == {"x": 6, "y": 3}

    def test_jsonpath_assignments_see_the_values_from_before_the_state(self) -> None:
        definition = jsonpath({
            "Set": {"Type": "Pass", "Assign": {"x": 3, "y": 6}, "Next": "Swap"},
            "Swap": {"Type": "Pass", "Assign": {"x.$": "$y", "y.$": "$x"}, "Next": "Show"},
            "Show": show_path("x", "y"),
        })
        assert run(definition).output == {"x": 6, "y": 3}

    def test_output_does_not_see_its_own_state_assignments(self) -> None:
        """AWS guide: Assign and Output are evaluated together; a state's Output sees the old value."""
        definition = jsonata({
            "Set": {"Type": "Pass", "Assign": {"x": "old"}, "Next": "Change"},
            "Change": {"Type": "Pass", "Assign": {"x": "new"}, "Output": {"seen": "{% $x %}"}, "Next": "Show"},
            "Show": {"Type": "Pass", "Output": {"before": "{% $states.input.seen %}", "after": "{% $x %}"}, "End": True},
        })
        assert run(definition).output == {"before": "old", "after": "new"}

    def test_jsonpath_paths_do_not_see_their_own_state_assignments(self) -> None:
        """[recorded] variables_assign/..._BASE_EVALUATION_ORDER_PASS_STATE: InputPath, ResultPath
        and OutputPath of the state that assigns `answer` still read the old `$answer`."""
        definition = jsonpath({
            "State0": {"Type": "Pass", "Result": {"q": "?"}, "Assign": {"question.$": "$.q", "answer": 42},
                       "Next": "State1"},
            "State1": {"Type": "Pass", "InputPath": "$answer", "ResultPath": "$.theAnswer", "OutputPath": "$answer",
                       "Assign": {"answer": "<omitted>"}, "End": True},
        })
        assert run(definition).output == 42

    def test_a_variable_keeps_its_value_until_assigned_again(self) -> None:
        definition = jsonata({
            "A": {"Type": "Pass", "Assign": {"n": 1}, "Next": "B"},
            "B": {"Type": "Pass", "Assign": {"m": "{% $n + 1 %}"}, "Next": "C"},
            "C": {"Type": "Pass", "Assign": {"n": "{% $m + 1 %}"}, "Next": "Show"},
            "Show": show("n", "m"),
        })
        assert run(definition).output == {"n": 3, "m": 2}


# ---------------------------------------------------------------------------------------------
# Scope: Parallel branches and Map iterations read outer variables; Output is how data leaves
# ---------------------------------------------------------------------------------------------


def parallel_machine(inner: dict[str, Any], *, then: dict[str, Any]) -> dict[str, Any]:
    return jsonata({
        "Set": {"Type": "Pass", "Assign": {"outer": "o"}, "Next": "Par"},
        "Par": {"Type": "Parallel", "Branches": [{"StartAt": "Inner", "States": {"Inner": inner}}], "Next": "After"},
        "After": then,
    })


class TestScope:
    """AWS guide, variable scope: a Parallel branch or Map iteration reads the outer variables but
    cannot assign them; its own variables stay in it; Output is how data leaves it."""

    def test_a_branch_reads_outer_variables(self) -> None:
        """[recorded] variables_assign/test_base_parallel_cases_BASE_SCOPE_PARALLEL."""
        inner = {"Type": "Pass", "Output": "{% $outer %}", "End": True}
        assert run(parallel_machine(inner, then={"Type": "Pass", "End": True})).output == ["o"]

    def test_branch_variables_do_not_leak_out(self) -> None:
        inner = {"Type": "Pass", "Assign": {"inner": 1}, "Output": "{% $outer %}", "End": True}
        then = {"Type": "Pass", "Output": {"outer": "{% $outer %}", "inner": "{% $exists($inner) %}"}, "End": True}
        assert run(parallel_machine(inner, then=then)).output == {"outer": "o", "inner": False}

    def test_a_branch_cannot_assign_an_outer_variable(self) -> None:
        """LocalStack's interpreter (variable_store.IllegalOuterScopeWrite) refuses the write too."""
        inner = {"Type": "Pass", "Assign": {"outer": "changed"}, "End": True}
        h = run(parallel_machine(inner, then={"Type": "Pass", "End": True}))
        assert (h.status, h.finished.error) == ("FAILED", "States.Runtime")
        assert "cannot assign the variable 'outer': it belongs to an outer scope" in (h.finished.cause or "")

    def test_branches_are_isolated_from_each_other(self) -> None:
        def branch(name: str, value: int) -> dict[str, Any]:
            return {"StartAt": name, "States": {
                name: {"Type": "Pass", "Assign": {"mine": value}, "Next": f"{name}Show"},
                f"{name}Show": {"Type": "Pass", "Output": "{% $mine %}", "End": True},
            }}

        definition = jsonata({"Par": {"Type": "Parallel", "Branches": [branch("A", 1), branch("B", 2)], "End": True}})
        assert run(definition).output == [1, 2]

    def test_output_is_how_data_leaves_a_branch(self) -> None:
        inner = {"Type": "Pass", "Assign": {"secret": 7}, "Output": {"value": 7}, "End": True}
        then = show("fromBranch")
        definition = parallel_machine(inner, then=then)
        definition["States"]["Par"]["Assign"] = {"fromBranch": "{% $states.result[0].value %}"}
        assert run(definition).output == {"fromBranch": 7}

    def test_map_iterations_read_outer_variables_and_keep_their_own(self) -> None:
        """[recorded] variables_assign/test_base_cases_BASE_SCOPE_MAP and
        test_reference_assign_BASE_REFERENCE_IN_ITERATOR_OUTER_SCOPE (nested Maps)."""
        processor = {"StartAt": "Mine", "States": {
            "Mine": {"Type": "Pass", "Assign": {"item": "{% $states.input %}"}, "Next": "Nested"},
            "Nested": {"Type": "Map", "Items": [1], "ItemProcessor": {"StartAt": "Deep", "States": {
                "Deep": {"Type": "Pass", "Output": "{% $item * $bias %}", "End": True}}},
                "Output": "{% $states.result[0] %}", "End": True},
        }}
        definition = jsonata({
            "Set": {"Type": "Pass", "Assign": {"bias": 10}, "Next": "M"},
            "M": {"Type": "Map", "Items": [1, 2, 3], "MaxConcurrency": 2, "ItemProcessor": processor, "Next": "After"},
            "After": {"Type": "Pass", "Output": {"results": "{% $states.input %}", "leaked": "{% $exists($item) %}"},
                      "End": True},
        })
        assert run(definition).output == {"results": [10, 20, 30], "leaked": False}

    def test_a_map_iteration_cannot_assign_an_outer_variable(self) -> None:
        processor = {"StartAt": "Inner", "States": {"Inner": {"Type": "Pass", "Assign": {"total": 1}, "End": True}}}
        definition = jsonpath({
            "Set": {"Type": "Pass", "Assign": {"total": 0}, "Next": "M"},
            "M": {"Type": "Map", "ItemProcessor": processor, "End": True},
        })
        h = run(definition, [1])
        assert (h.status, h.finished.error) == ("FAILED", "States.Runtime")

    def test_a_catcher_of_a_parallel_assigns_in_the_outer_scope(self) -> None:
        """[recorded] error_handling/..._PARALLEL_CATCH_ERROR_VARIABLE_SAMPLING: a name assigned both
        in a branch and in the Parallel's Catcher is accepted, and the Catcher's assignment is the
        outer one."""
        branch = {"StartAt": "Fails", "States": {"Fails": task_state(Assign={"seen": "{% $states.input %}"})}}
        catcher = {"ErrorEquals": ["States.ALL"], "Assign": {"seen": "{% $states.errorOutput.Error %}"},
                   "Next": "Show"}
        definition = jsonata({"Par": {"Type": "Parallel", "Branches": [branch], "Catch": [catcher], "Next": "Show"},
                              "Show": show("seen")})
        assert run(definition, {}, {"Fails": Err("Boom")}).output == {"seen": "Boom"}

    def test_redrive_restores_the_variables_of_the_failed_state(self) -> None:
        definition = jsonata({
            "Set": {"Type": "Pass", "Assign": {"x": 1}, "Next": "T"},
            "T": task_state(Output={"x": "{% $x %}"}),
        })
        h = Harness(definition)
        h.start({})
        h.fail(h.only_task(), "Boom")
        assert h.status == "FAILED"
        from orchestrator.asl.execution import RedriveExecution

        h.send(RedriveExecution())
        h.succeed(h.only_task(), {})
        assert h.output == {"x": 1}


# ---------------------------------------------------------------------------------------------
# Size limits
# ---------------------------------------------------------------------------------------------


class LimitedHarness(Harness):
    """A harness whose Environment also limits all the variables of a run."""

    def __init__(self, *args: Any, max_variables_bytes: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_variables_bytes = max_variables_bytes

    def env(self) -> Environment:
        base = super().env()
        return Environment(now=base.now, seed=base.seed, max_payload_bytes=base.max_payload_bytes,
                           max_variables_bytes=self.max_variables_bytes)


class TestSizeLimits:
    """AWS guide, variable size limits: 256 KiB for one variable and for one state's Assign,
    10 MiB for all variables; beyond them States.DataLimitExceeded (the payload quota is
    configurable, so these are too: one variable and one Assign follow `max_payload_bytes`)."""

    def test_one_variable_above_the_limit(self) -> None:
        assign = {"big": "{% $states.input.text & $states.input.text %}"}
        definition = jsonata({"P": {"Type": "Pass", "Assign": assign, "End": True}})
        h = run(definition, {"text": "x" * 499}, max_payload_bytes=1000)
        assert h.status == "SUCCEEDED"  # 998 characters and two quotes
        h = run(definition, {"text": "x" * 500}, max_payload_bytes=1000)
        assert (h.status, h.finished.error, h.finished.cause) == (
            "FAILED", "States.DataLimitExceeded",
            "The state/task 'P' assigned the variable 'big' a value of 1002 bytes, exceeding the maximum number "
            "of bytes service limit (1000) for one variable.",
        )

    def test_the_assignments_of_one_state_together(self) -> None:
        assign = {"a": "{% $states.input.text %}", "b": "{% $states.input.text %}", "c": "{% $states.input.text %}"}
        h = run(jsonata({"P": {"Type": "Pass", "Assign": assign, "End": True}}), {"text": "x" * 400},
                max_payload_bytes=1000)
        assert (h.status, h.finished.error, h.finished.cause) == (
            "FAILED", "States.DataLimitExceeded",
            "The state/task 'P' assigned 1206 bytes of variables, exceeding the maximum number of bytes service "
            "limit (1000) for the variables assigned by one state.",
        )

    def test_all_variables_of_the_execution(self) -> None:
        states = {f"S{i}": {"Type": "Pass", "Assign": {f"v{i}": "{% $states.input.text %}"}, "Next": f"S{i + 1}"}
                  for i in range(3)}
        states["S3"] = {"Type": "Succeed"}
        h = LimitedHarness(jsonata(states), max_variables_bytes=2000)
        h.start({"text": "x" * 800})
        h.run_to_end()
        assert (h.status, h.finished.error) == ("FAILED", "States.DataLimitExceeded")
        assert h.finished.cause == (
            "The state/task 'S2' brought the variables of the execution to 2425 bytes, exceeding the maximum "
            "number of bytes service limit (2000) for all variables."
        )

    def test_the_limit_cannot_be_caught(self) -> None:
        """States.DataLimitExceeded is terminal: States.ALL does not catch it (AWS guide, error names)."""
        catcher = {"ErrorEquals": ["States.ALL"], "Next": "Handled"}
        definition = jsonata({"T": task_state(Assign={"big": "{% $states.result %}"}, Catch=[catcher]),
                              "Handled": {"Type": "Succeed"}})
        h = run(definition, {}, {"T": Ok("x" * 600)}, max_payload_bytes=500)
        assert (h.status, h.finished.error) == ("FAILED", "States.DataLimitExceeded")

    def test_the_default_limits(self) -> None:
        env = Environment(now=Harness(single({"Type": "Succeed"})).now)
        assert (env.max_payload_bytes, env.max_variables_bytes) == (256 * 1024, 10 * 1024 * 1024)


# ---------------------------------------------------------------------------------------------
# History and TestState
# ---------------------------------------------------------------------------------------------


class TestHistory:
    """AWS's `*StateExited` events list the assigned variables, each value JSON-encoded, with
    `assignedVariablesDetails: {"truncated": false}` ([recorded] LocalStack snapshot
    test_assign_base.snapshot.json, BASE_CONSTANT_LITERALS: "constant_str": "\\"constant string\\"")."""

    def test_a_state_exited_event_lists_the_assigned_variables(self) -> None:
        assign = {"s": "constant string", "i": 0, "f": 0.1, "b": True, "n": None, "l": [1, "a"], "o": {"k": "v"}}
        h = run(jsonpath({"P": {"Type": "Pass", "Assign": assign, "End": True}}), {"in": 1})
        assert exited(h, "P") == {
            "name": "P",
            "output": {"in": 1},
            "assignedVariables": {"s": '"constant string"', "i": "0", "f": "0.1", "b": "true", "n": "null",
                                  "l": '[1,"a"]', "o": '{"k":"v"}'},
            "assignedVariablesDetails": {"truncated": False},
        }

    def test_no_assignment_no_variables_in_the_event(self) -> None:
        h = run(jsonpath({"P": {"Type": "Pass", "Assign": {}, "Next": "Q"}, "Q": {"Type": "Pass", "End": True}}))
        assert exited(h, "P") == {"name": "P", "output": {}}
        assert exited(h, "Q") == {"name": "Q", "output": {}}

    def test_choice_wait_task_and_map_events(self) -> None:
        processor = {"StartAt": "Item", "States": {"Item": {"Type": "Pass", "Assign": {"item": "{% $states.input %}"},
                                                            "End": True}}}
        definition = jsonata({
            "C": {"Type": "Choice", "Choices": [{"Condition": True, "Assign": {"rule": 1}, "Next": "W"}]},
            "W": {"Type": "Wait", "Seconds": 1, "Assign": {"waited": True}, "Next": "T"},
            "T": task_state(Assign={"answer": "{% $states.result %}"}, Next="M"),
            "M": {"Type": "Map", "Items": ["a"], "ItemProcessor": processor, "Assign": {"n": "{% $count($states.result) %}"},
                  "End": True},
        })
        h = run(definition, {}, {"T": Ok("yes")})
        assert {e.details["name"]: e.details.get("assignedVariables") for e in h.history if e.type.endswith("Exited")} == {
            "C": {"rule": "1"}, "W": {"waited": "true"}, "T": {"answer": '"yes"'}, "Item": {"item": '"a"'},
            "M": {"n": "1"},
        }

    def test_a_catcher_assignment_is_on_the_exit_of_the_failed_state(self) -> None:
        catcher = {"ErrorEquals": ["States.ALL"], "Assign": {"error": "{% $states.errorOutput.Error %}"},
                   "Next": "Handled"}
        h = run(jsonata({"T": task_state(Catch=[catcher]), "Handled": {"Type": "Succeed"}}), {}, {"T": Err("Boom")})
        assert exited(h, "T")["assignedVariables"] == {"error": '"Boom"'}

    def test_the_history_survives_json(self) -> None:
        h = run(jsonpath({"P": {"Type": "Pass", "Assign": {"x": {"deep": [1]}}, "End": True}}))
        event = next(e for e in h.history if e.type == "PassStateExited")
        assert json.loads(event.model_dump_json())["details"]["assignedVariables"] == {"x": '{"deep":[1]}'}
        assert event.as_aws()["passStateExitedEventDetails"]["assignedVariablesDetails"] == {"truncated": False}


def state_report(definition: dict[str, Any], name: str, state_input: Any, *, result: Any = None,
               error: str | None = None, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    given = GivenOutcome(result=result, has_result=result is not None, error=error)
    report: dict[str, Any] = asyncio.run(run_test_state(parse_definition(definition), name, state_input, given=given,
                                                        resolver=TaskResolver(), variables=variables))
    return report


class TestTestState:
    """AWS TestState API: the request may set `variables`; `inspectionData.variables` is "the set
    of workflow variables after execution of the state" (API reference, InspectionData)."""

    def test_variables_in_and_out(self) -> None:
        definition = jsonata({"T": task_state(Arguments={"q": "{% $question %}"},
                                              Assign={"answer": "{% $states.result.text %}"}, Next="Done"),
                              "Done": {"Type": "Succeed"}})
        report = state_report(definition, "T", {}, result={"text": "42"}, variables={"question": "why"})
        assert report["status"] == "SUCCEEDED" and report["nextState"] == "Done"
        assert report["inspectionData"] == {
            "afterArguments": {"q": "why"},
            "result": {"text": "42"},
            "variables": {"question": "why", "answer": "42"},
        }

    def test_jsonpath_state_shows_its_variables(self) -> None:
        definition = jsonpath({"P": {"Type": "Pass", "Parameters": {"q.$": "$question"}, "Assign": {"seen.$": "$.q"},
                                     "End": True}})
        report = state_report(definition, "P", {}, variables={"question": "why"})
        assert report["output"] == {"q": "why"}
        assert report["inspectionData"]["variables"] == {"question": "why", "seen": "why"}

    def test_no_variables_no_entry(self) -> None:
        report = state_report(jsonpath({"P": {"Type": "Pass", "End": True}}), "P", {"a": 1})
        assert "variables" not in report["inspectionData"]

    def test_a_caught_error_shows_the_catcher_assignments(self) -> None:
        catcher = {"ErrorEquals": ["States.ALL"], "Assign": {"failed": True}, "Next": "Handled"}
        definition = jsonata({"T": task_state(Catch=[catcher]), "Handled": {"Type": "Succeed"}})
        report = state_report(definition, "T", {}, error="Boom")
        assert report["status"] == "CAUGHT_ERROR"
        assert report["inspectionData"]["variables"] == {"failed": True}

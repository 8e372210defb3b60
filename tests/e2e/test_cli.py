"""End to end: the installed `baton` command on the examples, and on the mistakes users make.

Every test runs the real command in a subprocess from the repository root, as a user would.
Identical invocations are run once and shared (`baton` is cached), so the whole file costs a
few dozen process starts. `examples/README.md` must show the exact commands in README_COMMANDS.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
_SCRIPT = Path(sys.executable).with_name("baton")
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "orchestrator.cli"]

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
STEPS = ("--steps", "examples.steps.text")


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        assert not self.stderr, self.stderr
        return json.loads(self.stdout)


@cache
def baton(*args: str) -> Result:
    proc = subprocess.run([*COMMAND, *args], cwd=ROOT, capture_output=True, text=True, timeout=60)
    return Result(proc.returncode, proc.stdout, proc.stderr)


# ------------------------------------------------------------------------ the examples

SEQUENCE = ("execute", "examples/sequence/summarise.json", "--input", "@examples/sequence/input.json", *STEPS)
PARALLEL = ("execute", "examples/parallel/enrich.json", "--input", "@examples/parallel/input.json", *STEPS)
MAP = ("execute", "examples/map/batch.json", "--input", "@examples/map/input.json", *STEPS)
MAP_STRICT = ("execute", "examples/map/batch-strict.json", "--input", "@examples/map/input.json", *STEPS)
INTRINSICS = ("execute", "examples/intrinsics/prompt-kit.json", "--input", "@examples/intrinsics/input.json")
GENERATE = "examples/retry-catch/generate.json"
MOCKS = "examples/retry-catch/mock-config.json"


def choice(name: str) -> tuple[str, ...]:
    return ("execute", "examples/choice/route.yaml", "--input", f"@examples/choice/{name}.json")


def retry_catch(test_case: str, *extra: str) -> tuple[str, ...]:
    return ("execute", GENERATE, "--input", "@examples/retry-catch/input.json", "--mock-config", MOCKS,
            "--test-case", test_case, *extra)


POLISH_RESULT = '{"StatusCode": 200, "Payload": {"text": "Kafka keeps an ordered log.", "model": "large"}}'
POLISH_TEST_STATE = ("test-state", GENERATE, "--state", "Polish", "--input", '{"draft": {"text": "Kafka logs events."}}',
                     "--result", POLISH_RESULT)

README_COMMANDS = [
    SEQUENCE, choice("enterprise"), PARALLEL, MAP, MAP_STRICT,
    retry_catch("ThrottledThenPolished", "--history"), retry_catch("LargeModelOverloaded"),
    POLISH_TEST_STATE, INTRINSICS,
]


def test_the_readme_shows_the_exact_command_of_every_example() -> None:
    readme = (ROOT / "examples" / "README.md").read_text(encoding="utf-8")
    for args in README_COMMANDS:
        assert f"`baton {shlex.join(args)}`" in readme


@pytest.mark.parametrize(
    ("definition", "summary"),
    [
        ("examples/sequence/summarise.json", "StartAt 'Prepare'; states: 2 Pass, 2 Task"),
        ("examples/choice/route.yaml", "StartAt 'Route'; states: 1 Choice, 1 Fail, 4 Pass"),
        ("examples/parallel/enrich.json", "StartAt 'Enrich'; states: 1 Parallel, 1 Pass, 2 Task"),
        ("examples/map/batch.json", "StartAt 'CountEach'; states: 1 Map, 1 Pass, 1 Task"),
        ("examples/map/batch-strict.json", "StartAt 'CountEach'; states: 1 Map, 1 Pass, 1 Task"),
        ("examples/retry-catch/generate.json", "StartAt 'Draft'; states: 3 Task"),
        ("examples/intrinsics/prompt-kit.json", "StartAt 'Parse'; states: 4 Pass"),
    ],
)
def test_every_example_validates_with_a_summary_line(definition: str, summary: str) -> None:
    result = baton("validate", definition)
    assert (result.code, result.stderr) == (0, "")
    assert result.stdout == f"{definition}: valid (JSONPath); {summary}\n"


def test_sequence_runs_pass_and_task_states_through_python_steps() -> None:
    result = baton(*SEQUENCE)
    assert result.code == 0
    assert result.json() == {
        "status": "SUCCEEDED",
        "output": {
            "model": "small",
            "prompt": 'Summarise "Release notes" (9 words) in one sentence: '
                      "Baton runs Amazon States Language workflows on Apache Kafka.",
            "words": 9,
            "characters": 60,
        },
        "error": None,
        "cause": None,
    }


@pytest.mark.parametrize(
    ("input_name", "model", "max_tokens"),
    [
        ("enterprise", "large-context", 200000),  # And: IsPresent + StringEquals + NumericGreaterThan
        ("translate", "translate", 8000),  # Or: ... Not StringEquals "en"
        ("short", "small", 4000),  # And: NumericLessThanEquals + IsPresent
        ("default", "standard", 32000),  # nothing matches: Default
    ],
)
def test_choice_routes_each_prompt_to_its_model(input_name: str, model: str, max_tokens: int) -> None:
    result = baton(*choice(input_name))
    given = json.loads((ROOT / "examples" / "choice" / f"{input_name}.json").read_text(encoding="utf-8"))
    assert result.code == 0
    assert result.json() == {
        "status": "SUCCEEDED", "output": {**given, "route": {"model": model, "maxTokens": max_tokens}},
        "error": None, "cause": None,
    }


def test_choice_string_matches_a_wildcard_pattern() -> None:
    prompt = {"prompt": "Translate the release notes into German.", "language": "en", "tokens": 300, "user": {}}
    result = baton("execute", "examples/choice/route.yaml", "--input", json.dumps(prompt))
    assert result.code == 0
    assert result.json()["output"]["route"] == {"model": "translate", "maxTokens": 8000}


def test_choice_can_end_in_a_fail_state() -> None:
    result = baton(*choice("blocked"))
    assert result.code == 1
    assert result.json() == {
        "status": "FAILED", "output": None, "error": "Caller.Blocked", "cause": "this caller may not use the models",
    }


def test_parallel_merges_its_three_branches_with_a_result_selector() -> None:
    result = baton(*PARALLEL, "--name", "enrich-1")
    assert result.code == 0
    assert result.json()["output"] == {
        "id": "doc-42",
        "source": "upload",
        "execution": "enrich-1",
        "words": 19,
        "uniqueWords": 13,
        "keywords": ["events", "kafka", "stores"],
    }


def _types(history: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in history]


def test_map_tolerates_a_failed_item_under_its_threshold() -> None:
    result = baton(*MAP)
    assert result.code == 0
    assert result.json() == {
        "status": "SUCCEEDED",
        "output": [
            {"index": 0, "id": "a", "words": 7},
            {"Error": "Text.Empty", "Cause": "nothing to count"},
            {"index": 2, "id": "c", "words": 3},
            {"index": 3, "id": "d", "words": 4},
        ],
        "error": None,
        "cause": None,
    }


def test_map_fails_when_failures_exceed_the_threshold() -> None:
    result = baton(*MAP_STRICT, "--history")
    assert result.code == 1
    report = result.json()
    assert {k: report[k] for k in ("status", "output", "error", "cause")} == {
        "status": "FAILED",
        "output": None,
        "error": "States.ExceedToleratedFailureThreshold",
        "cause": "The specified tolerated failure threshold was exceeded",
    }
    types = _types(report["history"])
    assert types[:3] == ["ExecutionStarted", "MapStateEntered", "MapStateStarted"]
    assert types[-3:] == ["MapIterationFailed", "MapStateFailed", "ExecutionFailed"]
    assert {"MapIterationStarted", "MapIterationSucceeded", "LambdaFunctionScheduled", "LambdaFunctionFailed"} <= set(types)
    # MaxConcurrency 2: never more than two iterations started and not yet finished.
    running = peak = 0
    for type_ in types:
        running += {"MapIterationStarted": 1, "MapIterationSucceeded": -1, "MapIterationFailed": -1}.get(type_, 0)
        peak = max(peak, running)
    assert peak == 2


def _seconds_between(history: list[dict[str, Any]], type_: str) -> list[float]:
    """Seconds between consecutive events of one type (the virtual clock's retry delays)."""
    times = [datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")) for e in history if e["type"] == type_]
    return [round((b - a).total_seconds(), 3) for a, b in zip(times, times[1:])]


def test_retry_with_backoff_and_jitter_succeeds_on_the_third_attempt() -> None:
    result = baton(*retry_catch("ThrottledThenPolished", "--history"))
    assert result.code == 0
    report = result.json()
    assert {k: report[k] for k in ("status", "output", "error", "cause")} == {
        "status": "SUCCEEDED",
        "output": {
            "question": "What does Kafka do?",
            "draft": {"text": "Kafka keeps an ordered log of events."},
            "answer": {"text": "Apache Kafka keeps a durable, ordered log of events.", "model": "large"},
        },
        "error": None,
        "cause": None,
    }
    history = report["history"]
    outcomes = [e["type"] for e in history if e["type"] in ("TaskFailed", "TaskSucceeded")]
    assert outcomes == ["TaskFailed", "TaskFailed", "TaskSucceeded", "TaskSucceeded"]
    failure = next(e for e in history if e["type"] == "TaskFailed")["taskFailedEventDetails"]
    assert (failure["error"], failure["cause"]) == ("Lambda.TooManyRequestsException", "Rate exceeded")
    # FULL jitter: each delay is random in [0, min(2 * 3**n, MaxDelaySeconds 10)].
    first, second = _seconds_between(history, "TaskScheduled")[:2]
    assert 0 <= first <= 2 and 0 <= second <= 6


def test_catch_falls_back_to_the_cheaper_model_when_retries_run_out() -> None:
    result = baton(*retry_catch("LargeModelOverloaded", "--history"))
    assert result.code == 0
    report = result.json()
    assert report["status"] == "SUCCEEDED"
    assert report["output"] == {
        "question": "What does Kafka do?",
        "draft": {"text": "Kafka keeps an ordered log of events."},
        "polishError": {"Error": "Model.Overloaded", "Cause": "the large model is still at capacity"},
        "answer": {"text": "Kafka stores events in order.", "model": "small"},
    }
    history = report["history"]
    entered = [e["taskStateEnteredEventDetails"]["name"] for e in history if e["type"] == "TaskStateEntered"]
    assert entered == ["Draft", "Polish", "PolishWithCheaperModel"]
    polish = [e for e in history if e["type"] == "TaskScheduled"
              and json.loads(e["taskScheduledEventDetails"]["parameters"])["FunctionName"] == "polish-large-model"]
    assert len(polish) == 3  # the first try and MaxAttempts 2 retries, "0" and "1-2" in the mock config
    # No jitter: 1 s, then 1 s * BackoffRate 2 (the default), on the virtual clock.
    assert _seconds_between(polish, "TaskScheduled") == [1.0, 2.0]


def test_intrinsics_example_uses_every_intrinsic_function() -> None:
    definition = (ROOT / "examples" / "intrinsics" / "prompt-kit.json").read_text(encoding="utf-8")
    used = set(re.findall(r"States\.([A-Za-z0-9]+)\(", definition))
    assert used == {
        "Format", "StringToJson", "JsonToString", "Array", "ArrayPartition", "ArrayContains", "ArrayRange",
        "ArrayGetItem", "ArrayLength", "ArrayUnique", "Base64Encode", "Base64Decode", "Hash", "JsonMerge",
        "MathRandom", "MathAdd", "StringSplit", "UUID",
    }
    result = baton(*INTRINSICS)
    assert result.code == 0
    report = result.json()
    assert report["status"] == "SUCCEEDED"
    output = report["output"]
    assert UUID4.match(output.pop("requestId"))
    assert output == {
        "parsed": {
            "prompt": "Explain vector databases to product managers in 100 words.",
            "config": {"model": "medium", "temperature": 0.2},
            "steps": ["chunk", "embed", "index", "retrieve"],
        },
        "arrays": {
            "models": ["small", "large", "medium"],
            "batches": [["chunk", "embed", "index"], ["retrieve"]],
            "usesRag": True,
            "pages": [1, 3, 5, 7, 9],
            "firstStep": "chunk",
            "tagCount": 5,
            "uniqueTags": ["embeddings", "rag", "llm"],  # java.util.HashSet's iteration order, as on AWS
        },
        "encoded": {
            "topicBase64": "dmVjdG9yIGRhdGFiYXNlcw==",
            "topicSha256": "67d8eee180496e0da2bd4de1a1b21bd797a7449f4dcbe3138904cd5c5d5d7f4b",
            "defaultsJson": '{"model":"small","temperature":0.2,"limits":{"maxTokens":1024}}',
            "settings": {"model": "small", "temperature": 0.7, "limits": {"timeoutSeconds": 30}},
        },
        "decodedTopic": "vector databases",
        "sample": 63,  # new java.util.Random(42).nextInt(99) + 1
        "nextAttempt": 3,
    }


def test_history_lists_aws_named_events_in_order() -> None:
    plain = baton(*SEQUENCE).json()
    assert "history" not in plain
    report = baton(*SEQUENCE, "--history").json()
    history = report["history"]
    assert _types(history) == [
        "ExecutionStarted",
        "PassStateEntered", "PassStateExited",
        "TaskStateEntered", "TaskScheduled", "TaskStarted", "TaskSucceeded", "TaskStateExited",
        "TaskStateEntered", "TaskScheduled", "TaskStarted", "TaskSucceeded", "TaskStateExited",
        "PassStateEntered", "PassStateExited",
        "ExecutionSucceeded",
    ]
    assert [e["id"] for e in history] == list(range(1, len(history) + 1))
    assert [e["previousEventId"] for e in history] == list(range(len(history)))
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["timestamp"]) for e in history)
    assert history[1]["passStateEnteredEventDetails"]["name"] == "Prepare"
    assert history[-1]["executionSucceededEventDetails"]["output"] == report["output"]


# ------------------------------------------------------------------------ test-state


def test_test_state_shows_the_data_after_each_stage_and_the_next_state() -> None:
    result = baton(
        "test-state", GENERATE, "--state", "Draft", "--input", '{"question": "What does Kafka do?", "user": "u1"}',
        "--result", '{"StatusCode": 200, "Payload": {"text": "Kafka keeps a log.", "tokens": 5}}',
    )
    assert result.code == 0
    assert result.json() == {
        "state": "Draft",
        "type": "Task",
        "status": "SUCCEEDED",
        "nextState": "Polish",
        "output": {"question": "What does Kafka do?", "user": "u1", "draft": {"text": "Kafka keeps a log."}},
        "inspectionData": {
            "afterInputPath": {"question": "What does Kafka do?", "user": "u1"},
            "afterParameters": {"FunctionName": "draft-answer", "Payload": {"question": "What does Kafka do?"}},
            "result": {"StatusCode": 200, "Payload": {"text": "Kafka keeps a log.", "tokens": 5}},
            "afterResultSelector": {"text": "Kafka keeps a log."},
            "afterResultPath": {"question": "What does Kafka do?", "user": "u1", "draft": {"text": "Kafka keeps a log."}},
        },
    }


def test_test_state_on_the_readme_example_ends_the_execution() -> None:
    report = baton(*POLISH_TEST_STATE).json()
    assert report["status"] == "SUCCEEDED" and "nextState" not in report
    assert report["output"]["answer"] == {"text": "Kafka keeps an ordered log.", "model": "large"}


def test_test_state_error_matching_a_retrier_is_retriable() -> None:
    result = baton("test-state", GENERATE, "--state", "Polish", "--input", '{"draft": {"text": "d"}}',
                   "--error", "Model.Overloaded", "--cause", "at capacity")
    assert result.code == 1
    report = result.json()
    assert {k: report[k] for k in ("status", "error", "cause", "retry")} == {
        "status": "RETRIABLE", "error": "Model.Overloaded", "cause": "at capacity",
        "retry": {"retrierIndex": 0, "delaySeconds": 1.0, "retryCount": 0},
    }
    assert "output" not in report and "nextState" not in report


def test_test_state_error_matching_a_catcher_is_caught() -> None:
    result = baton("test-state", GENERATE, "--state", "Polish", "--input", '{"draft": {"text": "d"}}',
                   "--error", "Lambda.ServiceException", "--cause", "boom")
    assert result.code == 0
    report = result.json()
    assert {k: report[k] for k in ("status", "error", "cause", "nextState", "output")} == {
        "status": "CAUGHT_ERROR", "error": "Lambda.ServiceException", "cause": "boom",
        "nextState": "PolishWithCheaperModel",
        "output": {"draft": {"text": "d"}, "polishError": {"Error": "Lambda.ServiceException", "Cause": "boom"}},
    }


def test_test_state_error_with_no_retrier_or_catcher_fails() -> None:
    result = baton("test-state", GENERATE, "--state", "Draft", "--input", '{"question": "q"}',
                   "--error", "Lambda.ServiceException", "--cause", "boom")
    assert result.code == 1
    report = result.json()
    assert (report["status"], report["error"], report["cause"]) == ("FAILED", "Lambda.ServiceException", "boom")


# ------------------------------------------------------------------------ user mistakes

INVALID_DEFINITION = {
    "StartAt": "Missing",
    "States": {
        "A": {"Type": "Pass", "Next": "Nowhere"},
        "B": {"Type": "Task", "End": True},
        "C": {"Type": "Bogus"},
    },
}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Broken inputs written once for the module: an invalid definition, three faulty mock configs."""
    folder = tmp_path_factory.mktemp("cli")
    out: dict[str, str] = {}

    def write(name: str, value: Any) -> None:
        path = folder / name
        path.write_text(value if isinstance(value, str) else json.dumps(value), encoding="utf-8")
        out[name] = str(path)

    write("invalid.json", INVALID_DEFINITION)
    write("not-json.json", '{"StartAt": "A", "States": {')
    mocks = json.loads((ROOT / MOCKS).read_text(encoding="utf-8"))
    cases = mocks["StateMachines"]["generate"]["TestCases"]
    write("no-state.json", {**mocks, "StateMachines": {"generate": {"TestCases": {
        "LargeModelOverloaded": {k: v for k, v in cases["LargeModelOverloaded"].items() if k != "PolishWithCheaperModel"},
    }}}})
    write("no-attempt.json", {**mocks, "MockedResponses": {
        **mocks["MockedResponses"], "LargeModelAlwaysOverloaded": {"0": {"Throw": {"Error": "Model.Overloaded"}}},
    }})
    write("no-response.json", {**mocks, "MockedResponses": {
        k: v for k, v in mocks["MockedResponses"].items() if k != "PolishedBySmallModel"
    }})
    return out


@pytest.mark.parametrize("command", ["validate", "execute"])
def test_an_invalid_definition_lists_every_problem_with_its_json_path(command: str, files: dict[str, str]) -> None:
    path = files["invalid.json"]
    result = baton(command, path)
    assert result.code == 2 and result.stdout == ""
    assert "Traceback" not in result.stderr
    *problems, last = result.stderr.splitlines()
    assert last == f"error: {path}: invalid definition ({len(problems)} problem(s))"
    assert all(line.startswith(f"{path}: $") for line in problems)
    text = "\n".join(problems)
    assert f"{path}: $.StartAt: 'StartAt' names 'Missing', which is not a state of this scope" in text
    assert f"{path}: $.States.A.Next: no state named 'Nowhere'" in text
    assert f"{path}: $.States.B: a Task state requires 'Resource'" in text
    assert f"{path}: $.States.C.Type: unknown state type 'Bogus'" in text


RETRY_CATCH_INPUT = ("--input", "@examples/retry-catch/input.json")

MISTAKES = {
    "definition file missing": (
        ("validate", "examples/missing.json"),
        "error: cannot read examples/missing.json: No such file or directory",
    ),
    "definition file missing (execute)": (
        ("execute", "examples/missing.json"),
        "error: cannot read examples/missing.json: No such file or directory",
    ),
    "definition not JSON or YAML": (
        ("validate", "{not-json.json}"),
        "error: {not-json.json}: not valid JSON or YAML",
    ),
    "input not JSON": (
        ("execute", "examples/sequence/summarise.json", "--input", '{"document": '),
        "error: --input is not valid JSON: ",
    ),
    "input file missing": (
        ("execute", "examples/sequence/summarise.json", "--input", "@examples/missing-input.json"),
        "error: cannot read examples/missing-input.json: No such file or directory",
    ),
    "test-state unknown state": (
        ("test-state", GENERATE, "--state", "Summarise"),
        "error: no state named 'Summarise' in the definition",
    ),
    "test-state result not JSON": (
        ("test-state", GENERATE, "--state", "Draft", "--result", "{oops"),
        "error: --result is not valid JSON: ",
    ),
    "mock config lacks the state": (
        ("execute", GENERATE, *RETRY_CATCH_INPUT, "--mock-config", "{no-state.json}", "--test-case",
         "LargeModelOverloaded"),
        "error: state 'PolishWithCheaperModel': nothing answers resource 'arn:aws:states:::lambda:invoke'",
    ),
    "mock config lacks an attempt": (
        ("execute", GENERATE, *RETRY_CATCH_INPUT, "--mock-config", "{no-attempt.json}", "--test-case",
         "LargeModelOverloaded"),
        "error: no mocked response for invocation 1 of state 'Polish'",
    ),
    "mock config lacks a mocked response": (
        ("execute", GENERATE, *RETRY_CATCH_INPUT, "--mock-config", "{no-response.json}", "--test-case",
         "LargeModelOverloaded"),
        "error: {no-response.json}: mocked response 'PolishedBySmallModel' (state 'PolishWithCheaperModel') "
        "is not defined",
    ),
    "unknown test case": (
        ("execute", GENERATE, *RETRY_CATCH_INPUT, "--mock-config", MOCKS, "--test-case", "HappyPath"),
        f"error: {MOCKS}: test case 'HappyPath' is not in the mock config for 'generate'",
    ),
    "test case without mock config": (
        ("execute", GENERATE, "--test-case", "HappyPath"),
        "error: --test-case needs --mock-config",
    ),
    "steps module missing": (
        ("execute", *SEQUENCE[1:4], "--steps", "examples.steps.missing"),
        "error: cannot import steps module: No module named 'examples.steps.missing'",
    ),
    "no step answers a task": (
        SEQUENCE[:4],
        "error: state 'Normalise': nothing answers resource 'baton:fn:normalise'; ",
    ),
}


@pytest.mark.parametrize(("args", "message"), list(MISTAKES.values()), ids=list(MISTAKES))
def test_a_mistake_gives_one_clear_line_and_a_non_zero_exit(
    args: tuple[str, ...], message: str, files: dict[str, str]
) -> None:
    def fill(text: str) -> str:
        return re.sub(r"\{([\w.-]+\.json)\}", lambda m: files[m.group(1)], text)

    result = baton(*(fill(a) for a in args))
    assert result.code == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.endswith("\n") and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(fill(message)), result.stderr


def test_test_state_takes_variables_and_shows_them_after_the_state(tmp_path: Path) -> None:
    definition = tmp_path / "vars.json"
    definition.write_text(json.dumps({"StartAt": "P", "QueryLanguage": "JSONata", "States": {
        "P": {"Type": "Pass", "Output": "{% $x + 1 %}", "Assign": {"y": "{% $x * 2 %}"}, "End": True}}}))
    report = baton("test-state", str(definition), "--state", "P", "--variables", '{"x": 4}').json()
    assert report["output"] == 5
    assert report["inspectionData"]["variables"] == {"x": 4, "y": 8}

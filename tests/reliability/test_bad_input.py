"""Bad input, generated with hypothesis, against the orchestrator and fn service as real processes:
every record is refused into the DLQ with its reason (never `internal_error`) or the execution
ends with a clear ASL error, and the system keeps running (a canary execution completes)."""

from __future__ import annotations

import asyncio
import base64
import collections
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.harness import Deployment, chain
from schemas.base import encode
from schemas.executions import StartExecution, execution_id_for
from schemas.review import ReviewDecision
from schemas.steps import StepCommand, StepResult
from tests.integration.runtime_support import RuntimeClient, read_all
from tests.reliability.conftest import FULL

EXAMPLES = 150 if FULL else 25
ROOT = Path(__file__).resolve().parents[2]
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                           lambda children: st.lists(children, max_size=4)
                           | st.dictionaries(st.text(max_size=8), children, max_size=4), max_leaves=12)


def nested_parallel(depth: int) -> dict[str, Any]:
    inner: dict[str, Any] = {"StartAt": "L0", "States": {"L0": {"Type": "Pass", "End": True}}}
    for level in range(1, depth):
        inner = {"StartAt": f"P{level}", "States": {f"P{level}": {"Type": "Parallel", "Branches": [inner],
                                                                  "End": True}}}
    return inner


# A cycle with an exit: loop three times through a Choice, then succeed.
LOOP = {"StartAt": "Inc", "States": {
    "Inc": {"Type": "Pass", "Parameters": {"i.$": "States.MathAdd($.i, 1)"}, "Next": "Again"},
    "Again": {"Type": "Choice", "Choices": [{"Variable": "$.i", "NumericGreaterThanEquals": 3, "Next": "Done"}],
              "Default": "Inc"},
    "Done": {"Type": "Succeed"}}}


class Garbage:
    """What was published, by the DLQ source topic it must come back from."""

    def __init__(self) -> None:
        self.expected: collections.Counter[str] = collections.Counter()
        self.executions: dict[str, str] = {}  # execution id -> what kind of bad input
        self.records = 0


def test_bad_input_is_refused_and_the_system_keeps_running(bootstrap: str) -> None:
    with Deployment(bootstrap) as deployment:
        topics = deployment.settings.topics
        garbage = Garbage()
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)

        async def open_client() -> RuntimeClient:
            return await RuntimeClient(deployment.settings).__aenter__()

        client = loop.run_until_complete(open_client())
        counter = iter(range(10**9))

        def send(topic: str, value: bytes | None, key: bytes | None, dlq: bool = True) -> None:
            loop.run_until_complete(client.producer.send(topic, value, key=key))
            garbage.records += 1
            if dlq:
                garbage.expected[topic] += 1

        def start(definition: Any, execution_input: Any, kind: str) -> None:
            name = f"bad{next(counter)}"
            execution_id = loop.run_until_complete(client.start(definition, execution_input, name=name))
            garbage.executions[execution_id] = kind
            garbage.records += 1

        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)
        @given(raw=st.binary(max_size=300), text=st.text(max_size=200), version=st.integers(min_value=2),
               token=st.text(min_size=1, max_size=80), value=json_values, depth=st.integers(1, 40),
               path=st.sampled_from(["$.a.b", "$.a[0]", "$.a.b[2].c", "$..a", "$.a[-1]"]))
        def publish(raw: bytes, text: str, version: int, token: str, value: Any, depth: int, path: str) -> None:
            n = next(counter)
            key = f"k{n}".encode()
            # Random bytes and malformed JSON on every orchestrator input and on the fn commands.
            for topic in (topics.start, topics.results, topics.review_decisions, topics.commands("fn")):
                send(topic, raw, key)
            if not _is_json(text):
                send(topics.start, text.encode(), key)
            # A schema version this build does not know.
            request = StartExecution(execution_id=execution_id_for("bad", f"v{n}"), state_machine="bad",
                                     definition=chain(1), name=f"v{n}")
            bumped = json.loads(encode(request))
            bumped["schema_version"] = version
            send(topics.start, json.dumps(bumped).encode(), request.execution_id.encode())
            # Forged task tokens: random text, and a well-formed one with a wrong signature
            forged = token if n % 2 else base64.urlsafe_b64encode(json.dumps(["x", "t"]).encode()).decode() + ".AAAA"
            decision = ReviewDecision(execution_id=f"e{n}", task_token=forged, outcome="success", output={})
            send(topics.review_decisions, encode(decision), f"e{n}".encode())
            # A result for an execution nobody runs.
            result = StepResult(execution_id=f"nobody{n}", task_id="t", kind="succeeded", output=value)
            send(topics.results, encode(result), f"nobody{n}".encode())
            # Definitions: deeply nested (valid, or refused as invalid_definition), JSONPath on
            # whatever type the input has, and a cycle that ends.
            start(nested_parallel(depth), value, "nested")
            start({"StartAt": "P", "States": {"P": {"Type": "Pass", "InputPath": path, "End": True}}},
                  {"a": value}, "jsonpath")
            if n % 5 == 0:
                start(LOOP, {"i": 0}, "loop")

        try:
            publish()
            # Fixed cases: oversized payload, JSON nested too deep to parse, an unknown definition shape.
            start(chain(1), {"blob": "x" * 300_000}, "oversized")
            send(topics.start, b'{"kind": "start", "input": ' + b"[" * 5000 + b"]" * 5000 + b"}", b"deep")
            start({"StartAt": "Nope", "States": {}}, {}, "invalid_definition")
            replayed = _replayed_token(loop, client, deployment)
            canary = loop.run_until_complete(client.start(chain(3), {"n": "canary"}, name="canary"))
            outcomes = loop.run_until_complete(client.wait([canary], timeout=120))
            assert outcomes[canary].status == "SUCCEEDED"
            letters = _dead_letters(loop, deployment, garbage, replayed)
            refused = {x.execution_id: x.reason for x in letters}
            deadline = time.monotonic() + 60
            while not all(e in client.outcomes or e in refused for e in garbage.executions):
                assert time.monotonic() < deadline, "a bad execution neither ended nor was refused"
                try:
                    loop.run_until_complete(client.wait(list(garbage.executions), timeout=1))
                except TimeoutError:
                    pass
            outcomes = client.outcomes
        finally:
            loop.run_until_complete(client.__aexit__())
            loop.close()
            asyncio.set_event_loop(None)
        for process in deployment.services:
            assert process.process is not None and process.process.poll() is None, f"{process.log} died"
        reasons = collections.Counter(letter.reason.split(":")[0] for letter in letters)
        assert "internal_error" not in reasons, [l.reason for l in letters if l.reason.startswith("internal")][:3]
        by_source = collections.Counter(letter.source_topic for letter in letters)
        for topic, count in garbage.expected.items():
            assert by_source[topic] >= count, (topic, by_source[topic], count, reasons)
        kinds = collections.Counter()
        for execution_id, kind in garbage.executions.items():
            if execution_id not in outcomes:
                kinds[(kind, "REFUSED", refused[execution_id].split(":")[0])] += 1
                continue
            status = outcomes[execution_id]
            kinds[(kind, status.status, (status.error or "").split(":")[0])] += 1
            if status.status != "SUCCEEDED":
                assert status.error and status.error.startswith("States."), (kind, status)
        assert kinds[("oversized", "FAILED", "States.DataLimitExceeded")] == 1, kinds
        assert kinds[("loop", "SUCCEEDED", "")] >= 1, kinds
        assert kinds[("invalid_definition", "REFUSED", "invalid_definition")] == 1, kinds
        print(f"\n{garbage.records} bad records/executions; DLQ reasons {dict(reasons)}; outcomes {dict(kinds)}")


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _replayed_token(loop: asyncio.AbstractEventLoop, client: RuntimeClient, deployment: Deployment) -> str:
    """A real task token used twice: the first decision completes the task, the replay is refused."""
    definition = chain(1, "baton:fn:noop.waitForTaskToken")
    execution_id = loop.run_until_complete(client.start(definition, {}, name="callback"))
    topic = deployment.settings.topics.commands("fn")
    deadline = time.monotonic() + 60
    token = None
    while token is None:
        assert time.monotonic() < deadline, "no callback command"
        for record in loop.run_until_complete(read_all(deployment.settings, topic)):
            try:
                command = StepCommand.model_validate_json(record.value)
            except ValueError:
                continue
            if command.execution_id == execution_id:
                token = command.task_token
    decision = ReviewDecision(execution_id=execution_id, task_token=token, outcome="success", output={"ok": 1})
    for _ in range(2):
        loop.run_until_complete(client.producer.send_and_wait(
            deployment.settings.topics.review_decisions, encode(decision), key=execution_id.encode()))
    outcome = loop.run_until_complete(client.wait([execution_id], timeout=60))[execution_id]
    assert outcome.status == "SUCCEEDED" and outcome.output == {"ok": 1}
    return execution_id


def _dead_letters(loop: asyncio.AbstractEventLoop, deployment: Deployment, garbage: Garbage,
                  replayed: str) -> list[Any]:
    from schemas.base import decode
    from schemas.dlq import DeadLetter

    wanted = sum(garbage.expected.values()) + 1  # + the replayed token
    deadline = time.monotonic() + 60
    while True:
        records = loop.run_until_complete(read_all(deployment.settings, deployment.settings.topics.dlq))
        letters = [decode(DeadLetter, r.value) for r in records]
        stale = [x for x in letters if x.reason.startswith("stale_task_token") and x.execution_id == replayed]
        if len(letters) >= wanted and stale:
            return letters
        assert time.monotonic() < deadline, f"{len(letters)} dead letters of {wanted}; replay refused: {bool(stale)}"
        time.sleep(0.5)


def test_a_cycle_without_exit_is_bounded() -> None:
    """A Pass/Choice cycle that never exits yields every budget of transitions and fails with
    States.Runtime at the history quota (25,000 events), so `execute --local` returns and an
    orchestrator's partition is never wedged."""
    definition = {"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Next": "C"},
        "C": {"Type": "Choice", "Choices": [{"Variable": "$.x", "StringEquals": "never", "Next": "D"}],
              "Default": "A"},
        "D": {"Type": "Succeed"}}}
    path = Path(__file__).with_name("_cycle.json")
    try:
        path.write_text(json.dumps(definition))
        proc = subprocess.run([sys.executable, "-m", "orchestrator.cli", "execute", "--local", str(path),
                               "--input", '{"x": "y"}'], cwd=ROOT, timeout=60, capture_output=True, text=True)
    finally:
        path.unlink(missing_ok=True)
    outcome = json.loads(proc.stdout)
    assert outcome["status"] == "FAILED" and outcome["error"] == "States.Runtime"
    assert "maximum number of events in its history (25000)" in outcome["cause"]


def test_a_non_ascii_forged_token_is_refused_as_invalid() -> None:
    """Found by the full form: a forged token with non-ASCII characters must be refused as an
    invalid token (hmac.compare_digest refuses non-ASCII str, so the signer compares bytes)."""
    from schemas.tokens import InvalidToken, TokenSigner

    signer = TokenSigner(b"0123456789abcdef0123456789abcdef")
    with pytest.raises(InvalidToken):
        signer.verify("\u00e9t\u00e9.sign\u00e9")

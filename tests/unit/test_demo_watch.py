"""What `baton demo` makes of the events topic: a run's terminal status ends it; an
ExecutionExpired for the same id (the retention of an earlier run ended) is not a status and is
passed over rather than stopping the demo."""

from __future__ import annotations

from types import SimpleNamespace

from orchestrator.demo import _DemoWatch
from schemas.base import encode
from schemas.executions import ExecutionExpired, ExecutionStatus


def test_an_expiry_on_the_events_topic_is_passed_over_and_a_status_ends_the_run() -> None:
    lines: list[str] = []
    watch = _DemoWatch(("story",), lines.append, show_stream=False)
    run = watch.runs["story"]
    key = run.execution_id.encode()
    expired = ExecutionExpired(execution_id=run.execution_id, state_machine="story", name="story-1")
    watch.on_status(SimpleNamespace(key=key, value=encode(expired)))
    assert run.status is None and not watch.done.is_set()
    succeeded = ExecutionStatus(execution_id=run.execution_id, state_machine="story", name="story-1",
                                status="SUCCEEDED", output={"story": "Once"})
    watch.on_status(SimpleNamespace(key=key, value=encode(succeeded)))
    assert run.status == "SUCCEEDED" and run.output == {"story": "Once"} and watch.done.is_set()
    assert lines and "SUCCEEDED" in lines[-1]

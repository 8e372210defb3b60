"""The LLM response cache against a REAL model (SmolLM2-135M served by xllamacpp on 127.0.0.1):
a second identical task makes no model call, counted by the model server itself.

The server's own counts: llama.cpp logs one "processing task" line per request it starts, and its
/metrics (`infra.local_model.serve` turns them on) count decode calls and tokens. The server here
serves a model name of its own on a port of its own, because the shared `smollm2` servers also
answer whatever other tests run at the same time, and their counts would move under this test.
No broker is needed: the handler is the one the llm step service runs.
"""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.local_model import LocalModelError, ModelServer, ensure_up, llm_config, state_dir, stop
from schemas.steps import StepCommand
from steps.llm.config import CacheSettings, LLMSettings
from steps.llm.handler import LLMHandler
from steps.sdk.handler import StepOutput

ALIAS = "smollm2-cache-test"
TASK = {"Model": ALIAS, "Prompt": "Name one colour.", "Temperature": 0, "MaxTokens": 12}
WORK = ("llamacpp:n_decode_total", "llamacpp:prompt_tokens_total", "llamacpp:prompt_tokens_cached_total",
        "llamacpp:tokens_predicted_total")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> Iterator[ModelServer]:
    """A model server of this test's own, started unless it already runs; stopped if started here."""
    try:
        servers = ensure_up([ALIAS], _free_port())
    except LocalModelError as error:
        pytest.fail(f"the local model did not start: {error}\n{error.log_tail}", pytrace=False)
    try:
        yield servers[0]
    finally:
        stop(servers)


def requests_started(server: ModelServer) -> int:
    """The chat requests the server has started, from its log (one "processing task" line each)."""
    log = state_dir() / f"{server.alias}.log"
    return sum("processing task" in line for line in log.read_text(errors="replace").splitlines())


def settled_requests(server: ModelServer, expected: int) -> int:
    """The request count once llama.cpp's log thread has written it (it writes asynchronously)."""
    deadline = time.monotonic() + 3
    count = requests_started(server)
    while count < expected and time.monotonic() < deadline:
        time.sleep(0.05)
        count = requests_started(server)
    time.sleep(0.3)  # a line written late would show up here as one request too many
    return requests_started(server)


def work_done(server: ModelServer) -> dict[str, float]:
    """llama.cpp's counters of the work it did (decode calls, prompt and generated tokens)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError as exc:
        pytest.fail(f"the model server on port {server.port} has no /metrics ({exc}): one started before "
                    "infra.local_model.serve turned them on; stop it (python -m infra.local_model down)")
    values = dict(line.split()[:2] for line in text.splitlines() if line and not line.startswith("#"))
    return {name: float(values[name]) for name in WORK}


def run_task(settings: LLMSettings, task_id: str) -> StepOutput:
    """One LLM task on a fresh handler, as a restarted step service (or a re-run workflow) would run it."""
    async def go() -> StepOutput:
        handler = LLMHandler(settings)
        try:
            return await handler.run(StepCommand(execution_id="exec-cache", task_id=task_id, service="llm",
                                                 resource="baton:llm", parameters=TASK))
        finally:
            await handler.aclose()

    return asyncio.run(go())


def settings_for(server: ModelServer, **cache: Any) -> LLMSettings:
    return LLMSettings(**llm_config([server]), cache=CacheSettings(**cache))


def test_a_second_identical_task_makes_no_model_call(server: ModelServer, tmp_path: Path) -> None:
    settings = settings_for(server, enabled=True, path=tmp_path / "llm-cache")
    before, work_before = requests_started(server), work_done(server)
    first = run_task(settings, "task-1")
    after_first, work_after_first = settled_requests(server, before + 1), work_done(server)
    assert first.metadata["cache"] == "miss"
    assert after_first == before + 1
    assert work_after_first["llamacpp:n_decode_total"] > work_before["llamacpp:n_decode_total"]

    second = run_task(settings, "task-2")
    assert settled_requests(server, after_first) == after_first  # zero requests reached the model
    assert work_done(server) == work_after_first  # and it decoded nothing
    assert second.metadata["cache"] == "hit"
    assert second.value["Text"] == first.value["Text"] and second.value["ResponseModel"] == ALIAS
    assert (second.metadata["input_tokens"], second.metadata["output_tokens"], second.metadata["cost_usd"]) == (0, 0, 0)
    assert second.metadata["cached_input_tokens"] == first.metadata["input_tokens"] > 0
    assert second.metadata["cached_output_tokens"] == first.metadata["output_tokens"] > 0


def test_with_the_cache_off_every_task_reaches_the_model(server: ModelServer, tmp_path: Path) -> None:
    settings = settings_for(server, path=tmp_path / "llm-cache")  # enabled: False, the default
    assert not settings.cache.enabled
    before = requests_started(server)
    outputs = [run_task(settings, f"task-{n}") for n in range(2)]
    assert settled_requests(server, before + 2) == before + 2
    assert all("cache" not in output.metadata for output in outputs)
    assert not (tmp_path / "llm-cache").exists()

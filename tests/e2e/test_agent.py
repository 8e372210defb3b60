"""The agent example (examples/genai/agent/) end to end: the offline model calls an fn tool and a
tool on a real MCP server (the example's, started here) and answers, on the real broker with the
orchestrator and the llm, fn and mcp step services, and in-process through `baton execute`. A loop
that never stops is ended by maxTurns or by the budget, with the error the Parallel's Catch sees; an MCP server that
hangs or disconnects is a Baton.MCP.* error a Catch routes, and the mcp service goes on serving."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kafka_io import KafkaSettings
from tests.integration.mcp_support import free_port, mcp_server, misbehaving_endpoint
from tests.integration.runtime_support import RuntimeClient

REPO = Path(__file__).resolve().parents[2]
AGENT = REPO / "examples" / "genai" / "agent"
QUESTION = json.loads((AGENT / "input.json").read_text())  # the weather in Paris in Fahrenheit: two tools


@pytest.fixture
def kafka(kafka_bootstrap: str, topic_prefix: str) -> KafkaSettings:
    from orchestrator.runtime.topics import ensure_topics

    settings = KafkaSettings(kafka_bootstrap=kafka_bootstrap, topic_prefix=topic_prefix.rstrip("."), partitions=3)
    asyncio.run(ensure_topics(settings))
    return settings


@pytest.fixture(scope="module")
def guide() -> Iterator[str]:
    with mcp_server() as url:
        yield url


@pytest.fixture(scope="module")
def model() -> Iterator[dict[str, Any]]:
    from infra import local_model

    servers = local_model.ensure_up()
    try:
        yield local_model.llm_config(servers)
    finally:
        local_model.stop(servers)


def tools_called(output: dict[str, Any]) -> list[str]:
    return [call["Name"] for message in output["messages"] for call in message.get("ToolCalls", [])]


def check_answer(output: dict[str, Any]) -> None:
    assert tools_called(output) == ["get_weather", "convert_temperature"]
    results = {m["ToolCallId"]: m["Content"] for m in output["messages"] if m["Role"] == "tool"}
    assert {"city": "Paris", "sky": "sunny", "celsius": 21} in results.values()  # the MCP server's
    assert {"celsius": 21.0, "fahrenheit": 69.8} in results.values()  # the fn tool's
    assert output["answer"] and output["turns"] == 3 and output["tokens"] > 0


async def _run_on_broker(kafka: KafkaSettings, llm_config: dict[str, Any], connections: dict[str, Any],
                         starts: list[tuple[dict[str, Any], Any, dict[str, Any] | None]]) -> list[Any]:
    from orchestrator.runtime.service import Orchestrator
    from orchestrator.settings import OrchestratorSettings
    from steps.fn.service import fn_service
    from steps.llm.config import LLMSettings
    from steps.llm.service import llm_service
    from steps.mcp import MCPSettings, load_connections, mcp_service

    stop = asyncio.Event()
    orchestrator = Orchestrator(kafka, OrchestratorSettings(instance_id=f"{kafka.topic_prefix}-o1", metrics_port=None))
    task = asyncio.create_task(orchestrator.run(stop))
    try:
        async with (llm_service(LLMSettings(**llm_config), kafka=kafka),
                    fn_service(["examples.steps.agent_tools"], settings=kafka),
                    mcp_service(MCPSettings(timeout_seconds=2), load_connections(json.dumps(connections)), kafka=kafka),
                    RuntimeClient(kafka) as client):
            await asyncio.wait_for(orchestrator.ready.wait(), 30)
            ids = [await client.start(definition, execution_input, budget=budget)
                   for definition, execution_input, budget in starts]
            outcomes = await client.wait(ids, timeout=120)
            return [outcomes[i] for i in ids]
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def _mcp_failures_definition() -> dict[str, Any]:
    """Two MCP calls that fail (a server that hangs, one that disconnects), each caught, then a good one."""
    def call(connection: str, next_state: str) -> dict[str, Any]:
        return {"Type": "Task", "Resource": "baton:mcp:callTool", "ResultPath": f"$.{connection}",
                "Parameters": {"Connection": connection, "Name": "get_weather", "Arguments": {"city": "Lima"}},
                "Catch": [{"ErrorEquals": ["Baton.MCP.Timeout", "Baton.MCP.Unavailable"],
                           "ResultPath": f"$.{connection}", "Next": next_state}], "Next": next_state}

    return {"StartAt": "hangs", "States": {"hangs": call("hangs", "drops"), "drops": call("drops", "city-guide"),
                                           "city-guide": {**call("city-guide", "Done")}, "Done": {"Type": "Succeed"}}}


def test_agent_on_the_broker_tools_max_turns_and_mcp_failures(kafka: KafkaSettings, model: dict[str, Any],
                                                              guide: str, tmp_path: Path) -> None:
    definition = json.loads((AGENT / "definition.json").read_text())
    never_done = {"question": "What is the weather in Paris?", "maxTurns": 2, "toolChoice": "required",
                  "tools": ["get_weather", "convert_temperature"]}

    async def scenario() -> list[Any]:
        hang, hang_url = await misbehaving_endpoint("hang")
        drop, drop_url = await misbehaving_endpoint("disconnect")
        connections = {"connections": {"city-guide": {"url": guide}, "hangs": {"url": hang_url},
                                       "drops": {"url": drop_url}}}
        try:
            return await _run_on_broker(kafka, model, connections, [
                (definition, QUESTION, None), (definition, never_done, None), (_mcp_failures_definition(), {}, None),
                (definition, {**never_done, "maxTurns": 50}, {"MaxTokens": 1500})])
        finally:
            hang.close()
            drop.close()

    answered, looped, mcp_failures, overspent = asyncio.run(scenario())
    assert answered.status == "SUCCEEDED", (answered.error, answered.cause)
    check_answer(answered.output)
    # The loop that never stops: maxTurns ends it with an error the Agent state's Catch routes.
    assert looped.status == "SUCCEEDED", (looped.error, looped.cause)
    assert looped.output == {"answer": None, "error": "Agent.MaxTurnsExceeded",
                             "cause": "the model still asked for tools after 2 turns (maxTurns 2)"}
    # The same loop with turns to spare: the start's budget ends it, and the same Catch routes it.
    assert overspent.status == "SUCCEEDED", (overspent.error, overspent.cause)
    assert overspent.output["answer"] is None and overspent.output["error"] == "Baton.LLM.BudgetExceeded"
    assert "of its budget of 1500; the LLM call is not made" in overspent.output["cause"]
    assert mcp_failures.status == "SUCCEEDED", (mcp_failures.error, mcp_failures.cause)
    assert mcp_failures.output["hangs"]["Error"] == "Baton.MCP.Timeout"
    assert mcp_failures.output["drops"]["Error"] == "Baton.MCP.Unavailable"
    assert "'hangs'" in mcp_failures.output["hangs"]["Cause"]
    assert mcp_failures.output["city-guide"]["StructuredContent"]["sky"] == "cloudy"  # the service still serves
    check_turns_on_the_page(kafka, tmp_path, answered.execution_id)


def check_turns_on_the_page(kafka: KafkaSettings, tmp_path: Path, execution_id: str) -> None:
    """The execution page (headless Chromium) lists the agent's three model turns: tokens, the tool
    called with its arguments, and the tools' results."""
    import httpx

    from tests.e2e.test_execution_page import Stack, _tab
    from tests.e2e.test_pages import ARTIFACTS, CHROMIUM, FLAGS, wait_status

    sync_api = pytest.importorskip("playwright.sync_api")
    assert CHROMIUM.exists(), "needs Debian's chromium (scripts/bootstrap installs it)"
    with Stack(kafka, tmp_path / "readmodel.sqlite") as url, sync_api.sync_playwright() as playwright:
        with httpx.Client(base_url=url, timeout=60) as client:
            wait_status(client, execution_id, "SUCCEEDED", timeout=60)  # the API's read model has it
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        try:
            tab = _tab(browser, url)
            tab.goto(f"/executions/{execution_id}")
            turns = tab.locator("#turns li.turn")
            turns.nth(2).wait_for()
            assert turns.count() == 3
            heads = tab.locator("#turns .turn-head").all_inner_texts()
            assert all(re.search(r"tokens in [1-9][0-9]* / out [1-9]", head) for head in heads), heads
            assert [head.split(" · ")[1] for head in heads] == ["tool_use", "tool_use", "end_turn"]
            calls = tab.locator("#turns .tool-call").all_inner_texts()
            assert calls[0].startswith("get_weather(") and "Paris" in calls[0], calls
            assert calls[1].startswith("convert_temperature("), calls
            results = " ".join(tab.locator("#turns .tool-result").all_inner_texts())
            assert "sunny" in results and "69.8" in results, results
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            tab.screenshot(path=str(ARTIFACTS / "execution-agent-turns.png"), full_page=True)
        finally:
            browser.close()


def execute(tmp_path: Path, model: dict[str, Any], guide: str, execution_input: Any, *options: str,
            whole: bool = False) -> Any:
    """`baton execute` of the agent, in-process (no broker), with the test's model and MCP server."""
    (tmp_path / "llm.json").write_text(json.dumps(model))
    (tmp_path / "mcp.json").write_text(json.dumps({"connections": {"city-guide": {"url": guide}}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATON_LLM_", "BATON_KAFKA_", "BATON_MCP_"))}
    env.update(BATON_KAFKA_BOOTSTRAP=f"127.0.0.1:{free_port()}",  # nothing listens: no broker is used
               BATON_MCP_CONNECTIONS=str(tmp_path / "mcp.json"))
    done = subprocess.run([sys.executable, "-m", "orchestrator.cli", "execute", str(AGENT / "definition.json"),
                           "--input", json.dumps(execution_input), "--steps", "examples.steps.agent_tools",
                           "--llm-config", str(tmp_path / "llm.json"), *options],
                          env=env, capture_output=True, text=True, timeout=180, cwd=REPO)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "SUCCEEDED", result
    return result if whole else result["output"]


def test_agent_in_process_with_baton_execute(tmp_path: Path, model: dict[str, Any], guide: str) -> None:
    check_answer(execute(tmp_path, model, guide, QUESTION))


def test_a_booking_waits_for_the_review_then_calls_the_mcp_tool(tmp_path: Path, model: dict[str, Any],
                                                                guide: str) -> None:
    booking = {"question": "Book a table for 2 people in Oslo.", "tools": ["reserve_table"]}
    approved = execute(tmp_path, model, guide, booking, "--result", 'AskBeforeBooking={"decision": "approve"}')
    assert tools_called(approved) == ["reserve_table"]
    assert [m["Content"]["city"] for m in approved["messages"] if m["Role"] == "tool"] == ["Oslo"]


def test_a_runaway_loop_is_ended_by_the_budget_with_the_error_catch_sees(tmp_path: Path, model: dict[str, Any],
                                                                          guide: str) -> None:
    """maxTurns far away, the model made to call tools forever: the start's budget (tighter than the
    definition's) ends the loop before the next LLM call, and the Agent state's Catch routes it."""
    runaway = {"question": "What is the weather in Paris?", "maxTurns": 50, "toolChoice": "required",
               "tools": ["get_weather", "convert_temperature"]}
    result = execute(tmp_path, model, guide, runaway, "--budget", '{"MaxTokens": 2500}', whole=True)
    spent = result["budget"]["spent"]
    assert result["output"] == {"answer": None, "error": "Baton.LLM.BudgetExceeded",
                                "cause": f"the execution has spent {spent['tokens']} tokens of its budget of 2500; "
                                         "the LLM call is not made"}
    assert result["budget"]["limits"] == {"MaxTokens": 2500, "MaxCost": 0.5}  # the definition's cost limit stays
    assert 2500 <= spent["tokens"] and 2 <= spent["calls"] < 50
    assert result["budget"]["byState"]["Think"] == spent

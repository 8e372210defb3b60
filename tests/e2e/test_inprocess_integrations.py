"""`baton test-state` and `baton execute` run LLM, HTTP and retrieval Tasks for real, in-process,
with no broker: the step services' own handlers, the offline model, the offline embeddings, the
intent demo's orders API (issue 17, part 1). Driven through the real `baton` command."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
GENAI = REPO / "examples" / "genai"
BATON = [sys.executable, "-m", "orchestrator.cli"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def offline() -> Iterator[dict[str, str]]:
    """The offline model and embeddings (reused if up; stopped after if started here), a knowledge
    base built for the insurance demo, and an environment with no broker and no LLM config."""
    from infra import local_embeddings, local_model

    servers = local_model.ensure_up()
    embeddings = local_embeddings.ensure_up()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BATON_LLM_", "BATON_KAFKA_"))}
        env["BATON_KAFKA_BOOTSTRAP"] = f"127.0.0.1:{_free_port()}"  # nothing listens: no broker is used
        env["BATON_EMBEDDINGS_BASE_URL"] = embeddings.base_url
        yield env
    finally:
        local_embeddings.stop(embeddings)
        local_model.stop(servers)


@pytest.fixture(scope="module")
def knowledge(offline: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    kb_dir = tmp_path_factory.mktemp("kb")
    env = {**offline, "BATON_KB_DIR": str(kb_dir)}
    built = subprocess.run([*BATON, "kb", "add", str(REPO / "examples" / "insurance" / "kb"), "--name", "insurance",
                            "--kb-dir", str(kb_dir), "--embeddings-url", offline["BATON_EMBEDDINGS_BASE_URL"]],
                           env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert built.returncode == 0, built.stderr
    return env


@pytest.fixture(scope="module")
def orders_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path, Any]]:
    """The intent demo's orders API on a free port, and a connections file that reaches it."""
    import yaml

    sys.path.insert(0, str(GENAI / "intent-api"))
    import server  # the demo's stdlib API

    from orchestrator.demo import connections_config

    port = _free_port()
    api = server.serve(port)
    connections = tmp_path_factory.mktemp("http") / "connections.yaml"
    connections.write_text(yaml.safe_dump(connections_config(port)), encoding="utf-8")
    try:
        yield port, connections, server.OrdersAPI
    finally:
        api.shutdown()
        api.server_close()


def baton(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BATON, *args], env=env, capture_output=True, text=True, timeout=600, cwd=REPO)


def test_test_state_runs_the_story_outline_on_the_offline_model(offline: dict[str, str]) -> None:
    run = baton(offline, "test-state", str(GENAI / "story" / "definition.json"), "--state", "Outline",
                "--input", f"@{GENAI / 'story' / 'input.json'}")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["status"] == "SUCCEEDED" and report["nextState"] == "DraftChapters"
    llm = report["inspectionData"]["llm"]
    assert llm["model"] == "smollm2-b" and llm["provider"] == "smollm2-b"
    assert llm["inputTokens"] > 0 and llm["outputTokens"] > 0
    assert llm["latencyMs"] > 0 and 0 < llm["timeToFirstTokenMs"] <= llm["latencyMs"]
    assert llm["costUsd"] == 0.0  # the offline model's price
    assert llm["promptRef"] == "story:outline@v1"
    topic = json.loads((GENAI / "story" / "input.json").read_text())["topic"]
    assert topic in llm["messages"][-1]["content"]  # the prompt as rendered from the store beside it
    outline = report["output"]["outline"]
    assert isinstance(outline["title"], str) and len(outline["chapters"]) == 2  # the model's JSON answer


def test_stream_prints_the_tokens_as_they_come(offline: dict[str, str]) -> None:
    run = baton(offline, "test-state", str(GENAI / "diet" / "definition.json"), "--state", "Advice", "--stream",
                "--input", json.dumps({"name": "Ana", "goal": "run faster", "diet": {"style": "vegan", "avoid": "meat"},
                                      "constraints": {"allergies": ["peanuts"]}}))
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    text = report["output"]["advice"]["text"] if "advice" in report["output"] else json.dumps(report["output"])
    words = [w for w in text.split() if len(w) > 3][:3]
    assert words and all(word in run.stderr for word in words), (run.stderr, text)


def test_test_state_calls_the_http_api_with_the_connection(offline: dict[str, str],
                                                           orders_api: tuple[int, Path, Any]) -> None:
    port, connections, api = orders_api
    before = len(api.calls)
    state_input = {"api_base": f"http://127.0.0.1:{port}", "request": {"body": {"order_id": "1042"}}}
    run = baton(offline, "test-state", str(GENAI / "intent-api" / "definition.json"), "--state", "CallOrdersApi",
                "--connections", str(connections), "--input", json.dumps(state_input))
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["status"] == "SUCCEEDED", report
    assert report["inspectionData"]["response"]["statusCode"] == 200
    request = report["inspectionData"]["request"]
    assert request["method"] == "POST" and request["url"] == f"http://127.0.0.1:{port}/orders/lookup"
    assert json.loads(request["body"]) == {"order_id": "1042"}
    assert "demo-key" not in run.stdout  # the connection's key is never shown
    assert len(api.calls) == before + 1 and api.calls[-1]["body"] == {"order_id": "1042"}


@pytest.mark.parametrize("demo", ["story", "diet", "travel", "insurance", "intent-api"])
def test_execute_runs_each_genai_demo_in_process(demo: str, knowledge: dict[str, str],
                                                 orders_api: tuple[int, Path, Any], tmp_path: Path) -> None:
    port, connections, _ = orders_api
    demo_input = json.loads((GENAI / demo / "input.json").read_text())
    if demo == "intent-api":
        demo_input["api_base"] = f"http://127.0.0.1:{port}"
    args = ["execute", str(GENAI / demo / "definition.json"), "--input", json.dumps(demo_input),
            "--connections", str(connections)]
    if demo == "travel":  # the human review, answered on the command line
        args += ["--result", 'ReviewPlan={"decision": "approve", "approved": true, "reviewer": "test"}']
    run = baton(knowledge, *args)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["status"] == "SUCCEEDED", result
    table = [line.split() for line in run.stderr.splitlines()]
    header = next(i for i, row in enumerate(table) if row[:2] == ["state", "model"])
    rows = table[header + 1:]
    llm_rows = [row for row in rows if row[0] != "total" and row[1].startswith("smollm2")]
    assert llm_rows, run.stderr
    assert all(int(row[2]) > 0 and int(row[3]) > 0 for row in llm_rows), run.stderr  # tokens in and out
    total = next(row for row in rows if row[0] == "total")
    assert int(total[1]) == sum(int(row[2]) for row in rows if row[0] != "total")
    if demo == "travel":
        assert result["output"]["review"]["reviewer"] == "test"


def test_a_review_with_no_answer_says_how_to_give_one(offline: dict[str, str]) -> None:
    run = subprocess.run([*BATON, "execute", str(GENAI / "travel" / "definition.json"), "--input",
                          f"@{GENAI / 'travel' / 'input.json'}"], env=offline, capture_output=True, text=True,
                         timeout=600, cwd=REPO, stdin=subprocess.DEVNULL)
    assert run.returncode == 2
    lines = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "--result ReviewPlan=JSON" in lines[0], run.stderr
    assert "Traceback" not in run.stderr


def test_a_review_on_a_terminal_is_asked(tmp_path: Path) -> None:
    """On a terminal, `baton execute` asks the person running it to decide a human review."""
    import pty

    definition = tmp_path / "definition.json"
    definition.write_text(json.dumps({"StartAt": "Review", "States": {"Review": {
        "Type": "Task", "Resource": "baton:review.waitForTaskToken",
        "Parameters": {"Question": "Ship the draft?", "Content": "the draft"}, "End": True}}}))
    leader, follower = pty.openpty()
    try:
        run = subprocess.Popen([*BATON, "execute", str(definition)], stdin=follower, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=REPO)
        os.write(leader, b"reject\nnot good enough\n")
        out, err = run.communicate(timeout=120)
    finally:
        os.close(leader)
        os.close(follower)
    assert "Ship the draft?" in err and "the draft" in err, err
    result = json.loads(out)
    assert result["status"] == "FAILED" and result["error"] == "Review.Rejected"
    assert result["cause"] == "not good enough"

"""`orchestrator.graph`: Mermaid, DOT, the SVG layout and state runs from history (pure)."""

from __future__ import annotations

from click.testing import CliRunner

from orchestrator.asl.model import parse_definition
from orchestrator.cli import main
from orchestrator.graph import layout, reach_order, state_runs, to_dot, to_mermaid, to_svg

MACHINE = parse_definition({"StartAt": "Route", "States": {
    "Route": {"Type": "Choice", "Choices": [{"Variable": "$.x", "NumericEquals": 1, "Next": "Fan"}],
              "Default": "Late"},
    "Fan": {"Type": "Parallel", "Next": "Late", "Branches": [
        {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}},
        {"StartAt": "B", "States": {"B": {"Type": "Task", "Resource": "baton:fn:b", "End": True,
                                          "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "C"}]},
                                    "C": {"Type": "Pass", "End": True}}}]},
    "Late": {"Type": "Succeed"}}})


def test_reach_order_and_mermaid_and_dot() -> None:
    assert reach_order(MACHINE) == ["Route", "Fan", "Late"]
    mermaid = to_mermaid(MACHINE)
    assert mermaid.startswith("flowchart TD") and 'subgraph g1["Fan: Branch 1"]' in mermaid
    assert "|rule 1|" in mermaid and "|default|" in mermaid and "-.->|catch States.ALL|" in mermaid
    dot = to_dot(MACHINE)
    assert dot.startswith("digraph") and "subgraph cluster_2" in dot and 'label="B\\nTask"' in dot


def test_svg_layout_nests_branches_inside_their_state() -> None:
    shape = layout(MACHINE)
    boxes = {box.name: box for box in shape.boxes}
    fan, a = boxes["Fan"], boxes["A"]
    assert fan.x <= a.x and a.x + a.w <= fan.x + fan.w and fan.y < a.y < fan.y + fan.h
    assert boxes["Route"].y < fan.y == boxes["Late"].y  # Late is reached from Route by Default
    svg = to_svg(MACHINE)
    assert svg.count('class="group"') == 2 and 'data-state="C"' in svg


def test_state_runs_from_history() -> None:
    history = [
        {"id": 1, "type": "ExecutionStarted"},
        {"id": 2, "type": "TaskStateEntered", "taskStateEnteredEventDetails": {"name": "B", "input": {"q": 1}}},
        {"id": 3, "type": "TaskScheduled"},
        {"id": 4, "type": "TaskFailed", "taskFailedEventDetails": {"error": "Model.Throttled", "cause": "slow"}},
        {"id": 5, "type": "TaskScheduled"},
        {"id": 6, "type": "TaskSucceeded", "taskSucceededEventDetails": {
            "output": '{"model": "smollm2", "usage": {"input_tokens": 3, "output_tokens": 5}}'}},
        {"id": 7, "type": "TaskStateExited", "taskStateExitedEventDetails": {"name": "B", "output": {"ok": 1}}},
        {"id": 8, "type": "PassStateEntered", "passStateEnteredEventDetails": {"name": "C", "input": {}}},
        {"id": 9, "type": "ExecutionFailed", "executionFailedEventDetails": {"error": "Boom", "cause": "why"}},
    ]
    runs = state_runs(history)
    assert runs["B"].status == "SUCCEEDED" and runs["B"].retries == 1 and runs["B"].output == {"ok": 1}
    assert runs["B"].model == "smollm2" and runs["B"].tokens == {"input_tokens": 3, "output_tokens": 5}
    assert runs["C"].status == "FAILED" and runs["C"].error == "Boom"
    assert 'class="state status-failed"' in to_svg(MACHINE, runs)


def test_baton_graph_command(tmp_path: object) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["graph", "examples/parallel/enrich.json", "--format", "dot"])
    assert result.exit_code == 0 and result.output.startswith("digraph")
    result = runner.invoke(main, ["graph", "no/such/file.json"])
    assert result.exit_code == 2 and result.output.strip().startswith("error: cannot read no/such/file.json")

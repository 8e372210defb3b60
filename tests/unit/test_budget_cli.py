"""Budgets at the command line, without Kafka: a bad --budget is one `error:` line before anything
is sent; `baton describe` prints the budget line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.api.readmodel import ExecutionView
from orchestrator.cli.main import main
from orchestrator.cli.printing import print_execution

PLAIN = {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}


@pytest.mark.parametrize("command", ["start", "execute"])
@pytest.mark.parametrize("bad, says", [
    ('"5"', 'error: --budget: a budget is an object such as {"MaxTokens": 20000, "MaxCost": 0.5}, not "5"'),
    ('{"MaxCost": -1}', "error: --budget: MaxCost: must be a number of USD >= 0, not -1"),
    ('{"MaxTokens": 10', "error: --budget is not valid JSON"),
])
def test_a_bad_budget_is_one_line(tmp_path: Path, command: str, bad: str, says: str) -> None:
    definition = tmp_path / "plain.json"
    definition.write_text(json.dumps(PLAIN))
    # Nothing listens there: the budget is refused before any broker is asked.
    result = CliRunner().invoke(main, [command, str(definition), "--budget", bad,
                                       *(["--bootstrap", "127.0.0.1:1"] if command == "start" else [])])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(says), result.output


def test_describe_prints_the_spend_against_the_budget(capsys: pytest.CaptureFixture[str]) -> None:
    view = ExecutionView(execution_id="e", state_machine="agent", name="a1", status="SUCCEEDED", budget={
        "limits": {"MaxTokens": 2500, "MaxCost": 0.5}, "spent": {"tokens": 2546, "costUsd": 0.0, "calls": 7}})
    print_execution(view)
    assert "Budget         2546 tokens of 2500, 0 USD of 0.5, in 7 charged calls" in capsys.readouterr().out
    assert "budget" not in ExecutionView(execution_id="e", state_machine="m", name="n", status="RUNNING").model_dump()

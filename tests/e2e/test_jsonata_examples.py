"""End to end: the JSONata twins in examples/jsonata give their JSONPath twins' results.

Each pair runs through the installed `baton` command, from the repository root, with the same
input, steps or mock config and execution name; the whole result (status, output, error,
cause) must be equal. `examples/README.md` shows the commands.
"""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
_SCRIPT = Path(sys.executable).with_name("baton")
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "orchestrator.cli"]
STEPS = ("--steps", "examples.steps.text")
MOCKS = ("--mock-config", "examples/retry-catch/mock-config.json")


@cache
def baton(*args: str) -> tuple[int, Any]:
    proc = subprocess.run([*COMMAND, *args], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.stderr == "", proc.stderr
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.startswith("{") else proc.stdout


# (JSONata twin, JSONPath twin, the rest of the command line)
TWINS = [
    ("summarise.json", "sequence/summarise.json", ("--input", "@examples/sequence/input.json", *STEPS)),
    *[("route.yaml", "choice/route.yaml", ("--input", f"@examples/choice/{name}.json"))
      for name in ("enterprise", "translate", "short", "default", "blocked")],
    ("enrich.json", "parallel/enrich.json", ("--input", "@examples/parallel/input.json", *STEPS)),
    ("batch.json", "map/batch.json", ("--input", "@examples/map/input.json", *STEPS)),
    ("batch-strict.json", "map/batch-strict.json", ("--input", "@examples/map/input.json", *STEPS)),
    *[("generate.json", "retry-catch/generate.json",
       ("--input", "@examples/retry-catch/input.json", *MOCKS, "--test-case", case))
      for case in ("ThrottledThenPolished", "LargeModelOverloaded")],
]


@pytest.mark.parametrize(("jsonata", "jsonpath", "args"), TWINS, ids=lambda value: str(value))
def test_the_jsonata_twin_gives_the_jsonpath_result(jsonata: str, jsonpath: str, args: tuple[str, ...]) -> None:
    ours = baton("execute", f"examples/jsonata/{jsonata}", "--name", "twin", *args)
    theirs = baton("execute", f"examples/{jsonpath}", "--name", "twin", *args)
    assert ours == theirs
    assert ours[1]["status"] in ("SUCCEEDED", "FAILED")


def test_the_twins_cover_success_and_failure() -> None:
    statuses = {baton("execute", f"examples/jsonata/{jsonata}", "--name", "twin", *args)[1]["status"]
                for jsonata, _, args in TWINS}
    assert statuses == {"SUCCEEDED", "FAILED"}


@pytest.mark.parametrize("name", sorted({jsonata for jsonata, _, _ in TWINS}))
def test_every_jsonata_example_validates_as_jsonata(name: str) -> None:
    code, out = baton("validate", f"examples/jsonata/{name}")
    assert code == 0 and out.startswith(f"examples/jsonata/{name}: valid (JSONata); ")


def test_the_history_shows_the_assigned_variables() -> None:
    code, report = baton("execute", "examples/jsonata/generate.json", "--input", "@examples/retry-catch/input.json",
                         *MOCKS, "--test-case", "LargeModelOverloaded", "--history")
    assert code == 0
    exits = [event["taskStateExitedEventDetails"] for event in report["history"] if event["type"] == "TaskStateExited"]
    assert exits[0]["name"] == "Draft"
    assert exits[0]["assignedVariables"] == {"draft": '{"text":"Kafka keeps an ordered log of events."}'}
    assert exits[0]["assignedVariablesDetails"] == {"truncated": False}
    assert all("assignedVariables" not in details for details in exits[1:])


def test_the_readme_lists_the_jsonata_examples() -> None:
    readme = (ROOT / "examples" / "README.md").read_text(encoding="utf-8")
    assert "`baton execute examples/jsonata/summarise.json --input @examples/sequence/input.json " \
           "--steps examples.steps.text`" in readme
    assert "`examples/jsonata/run`" in readme


def test_the_run_script_is_executable() -> None:
    script = ROOT / "examples" / "jsonata" / "run"
    assert script.stat().st_mode & 0o111

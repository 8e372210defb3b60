"""`baton eval` against the real offline model (SmolLM2-135M, two servers: smollm2 and smollm2-b),
in-process, no broker (issue 17, part 2).

One eval of the intent demo's ClassifyIntent state over 20 inputs x 2 models x 2 prompt versions,
with a variant whose prompt template does not render, one naming an unknown model and a dataset
line that is not JSON, run through the real `baton eval` command; its kept run is then checked for
consistency: counts add up, token sums equal the per-item records, a wrong expected output lowers
the score, the judge's score is bounded. MaxTokens stays the definition's 24 and the judge's 16,
and the judge grades the first 5 inputs only: the run takes about a minute on 2 cores. Assertions
are about structure, never wording.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
INTENT = REPO / "examples" / "genai" / "intent-api"
BATON = [sys.executable, "-m", "orchestrator.cli"]
VARIANTS = """
variants:
  - {name: small-v1, model: smollm2, prompt_ref: "intent:intent@v1"}
  - {name: small-v2, model: smollm2, prompt_ref: "intent:intent@v2"}
  - {name: big-v1, model: smollm2-b, prompt_ref: "intent:intent@v1"}
  - {name: big-v2, model: smollm2-b, prompt_ref: "intent:intent@v2"}
  - {name: broken, model: smollm2, prompt_ref: "intent:intent@v3"}
  - {name: unknown, model: gpt-nine}
scorers:
  - {kind: jsonpath, path: $.classified.intent, weight: 2}
  - {kind: judge, weight: 1}
judge: {model: smollm2-b, rubric: "Is the intent right for the message?", max_items: 5}
prices:
  smollm2-b: {input_per_million: 1.0, output_per_million: 2.0}
"""
RUN_VARIANTS = ["small-v1", "small-v2", "big-v1", "big-v2", "broken"]


@pytest.fixture(scope="module")
def offline() -> Iterator[None]:
    """The offline model servers: reused if up, stopped after only if started here."""
    from infra import local_model

    servers = local_model.ensure_up()
    try:
        yield
    finally:
        local_model.stop(servers)


@pytest.fixture(scope="module")
def workspace(offline: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A copy of the intent demo with a v3 prompt that does not render, the dataset's first 20
    lines and a line that is not JSON, the variants file, and an environment keeping runs here."""
    root = tmp_path_factory.mktemp("eval")
    demo = root / "intent-api"
    shutil.copytree(INTENT / "prompts", demo / "prompts")
    shutil.copy(INTENT / "definition.json", demo / "definition.json")
    (demo / "prompts" / "intent" / "v3.j2").write_text("Classify: {{ message | no_such_filter }}\n")
    lines = (INTENT / "eval" / "dataset.jsonl").read_text().splitlines()[:20]
    dataset = root / "dataset.jsonl"
    dataset.write_text("\n".join([*lines[:5], "{this is not json", *lines[5:]]) + "\n")
    variants = root / "variants.yaml"
    variants.write_text(VARIANTS)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATON_LLM_", "BATON_KAFKA_"))}
    env["BATON_STATE_DIR"] = str(root / "state")
    return {"root": root, "definition": demo / "definition.json", "dataset": dataset, "variants": variants,
            "env": env, "lines": [json.loads(line) for line in lines]}


def baton(workspace: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BATON, *args], env=workspace["env"], capture_output=True, text=True, timeout=600,
                          cwd=REPO)


@pytest.fixture(scope="module")
def run(workspace: dict[str, Any]) -> dict[str, Any]:
    done = baton(workspace, "eval", str(workspace["definition"]), "--state", "ClassifyIntent",
                 "--dataset", str(workspace["dataset"]), "--variants", str(workspace["variants"]),
                 "--concurrency", "4")
    assert done.returncode == 0, done.stderr
    folders = list((workspace["root"] / "state" / "evals").iterdir())
    assert len(folders) == 1
    folder = folders[0]
    return {"stdout": done.stdout, "stderr": done.stderr, "folder": folder,
            "summary": json.loads((folder / "summary.json").read_text()),
            "records": [json.loads(line) for line in (folder / "records.jsonl").read_text().splitlines()]}


def by_variant(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["variant"]: s for s in run["summary"]["summaries"]}


def test_bad_input_is_one_line_each_and_the_rest_runs(run: dict[str, Any]) -> None:
    lines = run["stderr"].splitlines()
    assert any(line.startswith("eval: dataset.jsonl:6: not JSON") for line in lines), run["stderr"]
    assert any("variant 'unknown': unknown model 'gpt-nine'" in line and "variant skipped" in line for line in lines)
    assert any(line.startswith("eval: variant 'broken': 20 item(s) failed with Baton.LLM.PromptError")
               for line in lines), run["stderr"]
    assert [s["variant"] for s in run["summary"]["summaries"]] == RUN_VARIANTS
    assert by_variant(run)["broken"]["failed_by_error"] == {"Baton.LLM.PromptError": 20}


def test_counts_add_up(run: dict[str, Any]) -> None:
    assert run["summary"]["items"] == 20
    assert len(run["records"]) == 20 * len(RUN_VARIANTS)
    for name, summary in by_variant(run).items():
        mine = [r for r in run["records"] if r["variant"] == name]
        assert summary["items"] == len(mine) == 20
        assert summary["completed"] + summary["failed"] == 20
        assert sum(summary["failed_by_error"].values()) == summary["failed"]
        assert summary["completed"] == sum(r["status"] == "completed" for r in mine)
        assert sorted(r["item_id"] for r in mine) == sorted(line["id"] for line in run_lines(run))
    for name in ("small-v1", "small-v2", "big-v1", "big-v2"):
        summary = by_variant(run)[name]
        assert summary["completed"] > 0, summary
        assert summary["latency_p50_ms"] <= summary["latency_p95_ms"]
        assert summary["ttft_p50_ms"] is not None and summary["schema_valid"] is not None


def run_lines(run: dict[str, Any]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run["folder"] / "dataset.jsonl").read_text().splitlines()
            if line.startswith("{\"")]


def test_token_sums_equal_the_per_item_records(run: dict[str, Any]) -> None:
    for name, summary in by_variant(run).items():
        mine = [r for r in run["records"] if r["variant"] == name]
        assert summary["input_tokens_sum"] == sum(r["input_tokens"] or 0 for r in mine)
        assert summary["output_tokens_sum"] == sum(r["output_tokens"] or 0 for r in mine)
        if name != "broken":
            assert summary["input_tokens_sum"] > 0 and summary["output_tokens_sum"] > 0
    # smollm2-b has a notional price in the variants file; smollm2 is free.
    assert by_variant(run)["big-v1"]["cost_usd"] > 0
    assert by_variant(run)["small-v1"]["cost_usd"] == 0


def test_a_wrong_expected_output_lowers_the_score(run: dict[str, Any]) -> None:
    from orchestrator.evaluation.dataset import Item
    from orchestrator.evaluation.report import ItemRecord, summarise
    from orchestrator.evaluation.scorers import parse_scorer, score_item

    specs = [parse_scorer({"kind": "jsonpath", "path": "$.classified.intent"}, "test")]
    for name in ("small-v1", "small-v2", "big-v1", "big-v2"):
        right, wrong = [], []
        for data in (r for r in run["records"] if r["variant"] == name):
            expected = next(line["expected"] for line in run_lines(run) if line["id"] == data["item_id"])
            for kept, value in ((right, expected), (wrong, "no_such_intent")):
                record = ItemRecord.from_dict(data)
                if record.status == "completed":
                    item = Item(id=record.item_id, input=None, expected=value, has_expected=True)
                    record.score = score_item(specs, item, record.output, record.text).score
                kept.append(record)
        assert summarise(name, wrong)["score"] == 0.0
        assert summarise(name, right)["score"] > summarise(name, wrong)["score"], name


def test_the_judge_score_is_bounded(run: dict[str, Any]) -> None:
    judged = [r["scores"]["judge"] for r in run["records"] if r["status"] == "completed"]
    assert judged and all(score is None or 0.0 <= score <= 1.0 for score in judged)
    assert any(score is not None for score in judged)
    graded = {line["id"] for line in run_lines(run)[:5]}  # judge max_items: 5
    for record in run["records"]:
        if record["status"] == "completed":
            assert 0.0 <= record["score"] <= 1.0
            if record["item_id"] in graded:
                assert (record["scores"]["judge"] is None) == (record["judge_error"] is not None)
            else:
                assert record["scores"]["judge"] is None and record["judge_error"] is None
    assert all(0.0 <= s["score"] <= 1.0 for s in run["summary"]["summaries"])


def test_the_table_marks_the_best_and_the_run_is_kept(run: dict[str, Any]) -> None:
    assert run["stdout"].splitlines()[0].split()[:2] == ["variant", "ok"]
    assert "*" in run["stdout"]
    for name in ("config.json", "dataset.jsonl", "definition.json", "records.jsonl", "records.csv", "summary.json",
                 "summary.csv"):
        assert (run["folder"] / name).is_file(), name
    config = json.loads((run["folder"] / "config.json").read_text())
    assert [v["name"] for v in config["variants"]] == [*RUN_VARIANTS, "unknown"]
    assert len(run["summary"]["dataset_sha256"]) == 64


def test_a_judge_answer_that_does_not_parse_is_left_out_and_compare_reads_two_runs(
        workspace: dict[str, Any], run: dict[str, Any]) -> None:
    """A judge cut at 2 tokens cannot give a grade: each item's judge score is a judge error line
    and left out, the exact scorer still scores; `compare` then gives deltas against the first run."""
    variants = workspace["root"] / "cut-judge.yaml"
    variants.write_text("variants: [{name: small-v2, model: smollm2, prompt_ref: 'intent:intent@v2'}]\n"
                        "scorers: [{kind: jsonpath, path: $.classified.intent}, judge]\n"
                        "judge: {model: smollm2-b, max_tokens: 2}\n")
    done = baton(workspace, "eval", "run", str(workspace["definition"]), "--state", "ClassifyIntent",
                 "--dataset", str(workspace["dataset"]), "--variants", str(variants), "--limit", "3")
    assert done.returncode == 0, done.stderr
    judge_lines = [line for line in done.stderr.splitlines() if "its judge score is left out" in line]
    assert len(judge_lines) == 3, done.stderr
    second = max((workspace["root"] / "state" / "evals").iterdir())
    records = [json.loads(line) for line in (second / "records.jsonl").read_text().splitlines()]
    for record in records:
        if record["status"] == "completed":
            assert record["judge_error"] and record["scores"]["judge"] is None
            assert record["score"] == record["scores"]["jsonpath:$.classified.intent"]
    compared = baton(workspace, "eval", "compare", run["folder"].name, second.name, "--json")
    assert compared.returncode == 0, compared.stderr
    rows = {row["variant"]: row for row in json.loads(compared.stdout)["variants"]}
    assert rows["small-v2"]["in"] == "both" and rows["big-v1"]["in"] == "A only"
    completed = rows["small-v2"]["completed"]
    assert completed["delta"] == completed["b"] - completed["a"]

"""`baton eval`'s command line without a model: bad input is one line, kept runs are listed and
compared (runs made with the store, as `baton eval run` keeps them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import main
from orchestrator.evaluation.report import ItemRecord, summarise_all
from orchestrator.evaluation.store import save_run

REPO = Path(__file__).resolve().parents[2]
INTENT = REPO / "examples" / "genai" / "intent-api" / "definition.json"


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BATON_STATE_DIR", str(tmp_path / "state"))
    return tmp_path


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_a_dataset_with_no_usable_line_is_one_error_after_its_problems(state_dir: Path) -> None:
    dataset = state_dir / "d.jsonl"
    dataset.write_text("{oops\n[1]\n")
    code, _, err = invoke("eval", str(INTENT), "--state", "ClassifyIntent", "--dataset", str(dataset),
                          "--variant", "a:model=smollm2")
    assert code == 2
    lines = err.splitlines()
    assert lines[0].startswith("eval: d.jsonl:1: not JSON") and lines[1].startswith("eval: d.jsonl:2: expected")
    assert lines[-1].startswith("error: ") and "no usable dataset line" in lines[-1]


def test_variants_that_cannot_apply_are_reported_and_nothing_runs(state_dir: Path) -> None:
    dataset = state_dir / "d.jsonl"
    dataset.write_text('{"input": {"message": "hi"}}\n')
    code, _, err = invoke("eval", "run", str(INTENT), "--state", "RouteIntent", "--dataset", str(dataset),
                          "--variant", "a:model=smollm2", "--variant", "b:colour=red")
    assert code == 2
    lines = err.splitlines()
    assert lines[0].startswith("eval: --variant 'b': 'colour=red' is not key=value")
    assert lines[1].startswith("eval: variant 'a': state 'RouteIntent' is not a baton:llm Task")
    assert lines[2] == "error: no variant left to run: 1 refused (the problems say why)"


def test_a_bad_variants_file_is_one_line(state_dir: Path) -> None:
    variants = state_dir / "v.yaml"
    variants.write_text("scorers: [bleu]\n")
    code, _, err = invoke("eval", str(INTENT), "--dataset", str(state_dir / "d.jsonl"), "--variants", str(variants))
    assert code == 2 and err.strip().splitlines() == [
        f"error: {variants}: scorers[0]: unknown scorer 'bleu'; known: exact, contains, regex, jsonpath, "
        "json_schema, numeric, judge"]


def _kept(run_id: str, scores: dict[str, float]) -> None:
    records = [ItemRecord(name, "1", "completed", input_tokens=10, output_tokens=2, latency_ms=100.0, score=score)
               for name, score in scores.items()]
    summary = {"run_id": run_id, "dataset_sha256": "0" * 64, "items": 1, "seconds": 1.0, "problems": [],
               "config": {"state": "S", "variants": [{"name": n} for n in scores]},
               "summaries": summarise_all(list(scores), records)}
    save_run(run_id, summary, records, '{"input": 1}\n', {"StartAt": "S"})


def test_kept_runs_are_listed_and_compared(state_dir: Path) -> None:
    _kept("20260101-000000-aaaa", {"small": 0.5, "big": 0.75})
    _kept("20260101-000100-bbbb", {"small": 0.75, "new": 1.0})
    folder = state_dir / "state" / "evals" / "20260101-000000-aaaa"
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json", "dataset.jsonl", "definition.json", "records.csv", "records.jsonl", "summary.csv",
        "summary.json"]
    code, out, _ = invoke("eval", "list")
    assert code == 0 and out.splitlines()[0].startswith("20260101-000000-aaaa  state=S  variants=small,big")
    code, out, _ = invoke("eval", "compare", "20260101-000000", "20260101-000100", "--json")
    rows = {row["variant"]: row for row in json.loads(out)["variants"]}
    assert code == 0 and rows["small"]["score"]["delta"] == 0.25
    assert rows["big"]["in"] == "A only" and rows["new"]["in"] == "B only"
    code, out, _ = invoke("eval", "compare", "20260101-000000", "20260101-000100")
    assert code == 0 and "+0.25" in out and "big (A only)" in out
    code, _, err = invoke("eval", "compare", "20260101", "nope")
    assert code == 2 and "error: several runs start with '20260101'" in err

"""`baton eval`'s pure parts: the dataset, variants, scorers, the judge's parsing, aggregation,
the table, CSV and run deltas. No model, no files (the e2e test runs the real offline model)."""

from __future__ import annotations

import json

import pytest

from orchestrator.evaluation.config import default_scorers, parse_eval_file
from orchestrator.evaluation.dataset import Item, dataset_sha256, parse_dataset
from orchestrator.evaluation.errors import EvalError, JudgeError, ScorerError, VariantError
from orchestrator.evaluation.records import cost, record_from_execution, record_from_test_state
from orchestrator.evaluation.report import (
    ItemRecord,
    best,
    compare,
    percentile,
    render_compare,
    render_table,
    summarise,
    to_csv,
)
from orchestrator.evaluation.scorers import (
    JudgeSpec,
    ScorerSpec,
    combine,
    contains,
    exact,
    json_schema,
    judge_variables,
    numeric,
    parse_judge_answer,
    parse_scorer,
    parse_scorer_flag,
    regex,
    score_one,
)
from orchestrator.evaluation.variants import Variant, apply_variant, check_model, parse_variant_flag
from steps.llm.config import Price

# --- dataset --------------------------------------------------------------------------------------


def test_dataset_lines_become_items_and_a_bad_line_is_reported_by_its_number() -> None:
    text = "\n".join([
        '{"input": {"topic": "a"}, "expected": "x", "id": "first"}',
        "",
        "{not json",
        '{"input": 1, "reference": "r", "rubric": "be short"}',
        '["input"]',
        '{"expected": "no input"}',
        '{"input": 2, "id": "first"}',
        '{"input": 3, "expected": null, "extra": 1}',
        '{"input": 4, "expected": null}',
    ])
    items, problems = parse_dataset(text, "d.jsonl")
    assert [i.id for i in items] == ["first", "line-4", "line-9"]
    assert items[0] == Item(id="first", input={"topic": "a"}, expected="x", has_expected=True, line=1)
    assert items[1].reference == "r" and items[1].rubric == "be short" and not items[1].has_expected
    assert items[2].has_expected and items[2].expected is None
    assert [p.split(":")[1] for p in problems] == ["3", "5", "6", "7", "8"]
    assert problems[0].startswith("d.jsonl:3: not JSON (")
    assert "unknown field(s) extra" in problems[4]
    assert all(p.endswith("line skipped") for p in problems)


def test_dataset_hash_is_the_bytes_hash() -> None:
    assert dataset_sha256("a\n") == dataset_sha256("a\n") != dataset_sha256("a")
    assert len(dataset_sha256("")) == 64


# --- variants -------------------------------------------------------------------------------------

DEFINITION = {
    "StartAt": "Outline",
    "States": {
        "Outline": {"Type": "Task", "Resource": "baton:llm", "End": True,
                    "Parameters": {"Model": "smollm2-b", "PromptRef": "story:outline@v1", "MaxTokens": 96,
                                   "Temperature": 0, "Variables.$": "$"}},
        "Loop": {"Type": "Map", "End": True, "ItemProcessor": {"StartAt": "Draft", "States": {
            "Draft": {"Type": "Task", "Resource": "baton:llm", "End": True,
                      "Parameters": {"Model": "smollm2", "Prompt": "Hi {{ x }}", "Model.$": "$.m"}}}}},
        "Call": {"Type": "Task", "Resource": "baton:http", "End": True, "Parameters": {}},
    },
}


def test_a_variant_flag_names_its_overrides() -> None:
    variant = parse_variant_flag("big:model=smollm2-b,prompt=@v2,temperature=0.3,max_tokens=32,system=s:sys@v1")
    assert variant == Variant(name="big", model="smollm2-b", prompt_ref="@v2", system_ref="s:sys@v1",
                              temperature=0.3, max_tokens=32)
    for bad, says in (("nocolon", "expected NAME:key=value"), ("x:colour=red", "is not key=value"),
                      ("x:temperature=hot", "is not a number"), ("x:max_tokens=0", "from 1"),
                      ("bad name:model=m", "must be 1-64"), ("x:temperature=5", "from 0 to 2")):
        with pytest.raises(VariantError, match=says):
            parse_variant_flag(bad)


def test_a_variant_overrides_the_target_state_only_in_a_copy() -> None:
    changed = apply_variant(DEFINITION, "Outline", Variant("v", model="smollm2", prompt_ref="@v2", max_tokens=8))
    assert changed["States"]["Outline"]["Parameters"] == {
        "Model": "smollm2", "PromptRef": "story:outline@v2", "MaxTokens": 8, "Temperature": 0, "Variables.$": "$"}
    assert DEFINITION["States"]["Outline"]["Parameters"]["Model"] == "smollm2-b"  # type: ignore[index]
    assert changed["States"]["Loop"] == DEFINITION["States"]["Loop"]


def test_a_variant_reaches_a_nested_state_and_replaces_what_conflicts() -> None:
    changed = apply_variant(DEFINITION, "Draft", Variant("v", model="m2", prompt_ref="story:chapter@v3"))
    parameters = changed["States"]["Loop"]["ItemProcessor"]["States"]["Draft"]["Parameters"]
    assert parameters == {"Model": "m2", "PromptRef": "story:chapter@v3"}  # Prompt and Model.$ gone


def test_a_variant_that_cannot_apply_says_why() -> None:
    with pytest.raises(VariantError, match="no state named 'Nope'"):
        apply_variant(DEFINITION, "Nope", Variant("v", model="m"))
    with pytest.raises(VariantError, match="not a baton:llm Task"):
        apply_variant(DEFINITION, "Call", Variant("v", model="m"))
    with pytest.raises(VariantError, match="no static versioned PromptRef"):
        apply_variant(DEFINITION, "Draft", Variant("v", prompt_ref="@v2"))
    with pytest.raises(VariantError, match="give --state"):
        apply_variant(DEFINITION, None, Variant("v", prompt_ref="a@v2"))


def test_without_a_state_a_variant_changes_every_llm_task() -> None:
    changed = apply_variant(DEFINITION, None, Variant("v", model="m", temperature=0.5))
    assert changed["States"]["Outline"]["Parameters"]["Model"] == "m"
    assert changed["States"]["Loop"]["ItemProcessor"]["States"]["Draft"]["Parameters"]["Temperature"] == 0.5
    assert changed["States"]["Call"]["Parameters"] == {}


def test_an_unknown_model_or_provider_is_refused_clearly() -> None:
    models, providers = {"smollm2", "smollm2-b"}, {"local"}
    check_model(Variant("ok", model="smollm2"), models, providers)
    check_model(Variant("routed", model="anything", provider="local"), models, providers)
    check_model(Variant("open", model="anything"), set(), providers)  # no routes: the default provider
    with pytest.raises(VariantError, match=r"variant 'x': unknown model 'gpt-9'; configured: smollm2, smollm2-b"):
        check_model(Variant("x", model="gpt-9"), models, providers)
    with pytest.raises(VariantError, match="unknown provider 'nope'"):
        check_model(Variant("y", model="smollm2", provider="nope"), models, providers)


def test_the_variants_file_keeps_good_entries_and_reports_bad_ones() -> None:
    loaded = parse_eval_file({
        "variants": [{"name": "a", "model": "m"}, {"name": "b", "colour": "red"}, "c", {"name": "d", "max_tokens": 9}],
        "scorers": [{"kind": "exact", "weight": 2}, "contains", {"kind": "judge"}],
        "judge": {"model": "smollm2-b", "rubric": "be right"},
        "prices": {"m": {"input_per_million": 1, "output_per_million": 2}},
    }, "v.yaml")
    assert [v.name for v in loaded.variants] == ["a", "d"]
    assert len(loaded.problems) == 2 and "v.yaml: variants[1]: unknown field(s) colour" in loaded.problems[0]
    assert [s.kind for s in loaded.scorers] == ["exact", "contains", "judge"] and loaded.scorers[0].weight == 2
    assert loaded.judge == JudgeSpec(model="smollm2-b", rubric="be right")
    assert parse_eval_file({"judge": {"model": "j", "max_items": 5}}).judge == JudgeSpec(model="j", max_items=5)
    with pytest.raises(EvalError, match="max_items must be an integer >= 1"):
        parse_eval_file({"judge": {"model": "j", "max_items": 0}})
    assert loaded.prices["m"].cost(1_000_000, 1_000_000) == 3
    with pytest.raises(ScorerError, match="unknown scorer 'bleu'"):
        parse_eval_file({"scorers": ["bleu"]})
    with pytest.raises(EvalError, match="unknown key"):
        parse_eval_file({"variant": []})
    with pytest.raises(EvalError, match="prices"):
        parse_eval_file({"prices": {"m": {"input_per_million": -1}}})


# --- scorers --------------------------------------------------------------------------------------


def test_exact() -> None:
    assert exact(" yes\n", "yes") == 1.0
    assert exact("Yes", "yes") == 0.0 and exact("Yes", "yes", case_sensitive=False) == 1.0
    assert exact({"a": 1}, {"a": 1}) == 1.0 and exact(1, "1") == 0.0


def test_contains() -> None:
    assert contains("a lighthouse story", "lighthouse") == 1.0
    assert contains("a lighthouse story", ["light", "boat", "story", "x"]) == 0.5
    assert contains({"title": "The Cat"}, ["cat"], case_sensitive=False) == 1.0
    assert contains("anything", []) == 1.0


def test_regex() -> None:
    assert regex("order 1042", r"\d{4}") == 1.0
    assert regex("no digits", r"\d") == 0.0
    assert regex({"n": 5}, r'"n": 5') == 1.0


def test_json_schema() -> None:
    schema = {"type": "object", "required": ["intent"], "properties": {"intent": {"enum": ["a", "b"]}}}
    assert json_schema({"intent": "a"}, schema) == 1.0
    assert json_schema('{"intent": "b"}', schema) == 1.0
    assert json_schema({"intent": "c"}, schema) == 0.0
    assert json_schema("not json", schema) == 0.0


def test_numeric() -> None:
    assert numeric("about 41.6 km", 42, 0.5) == 1.0
    assert numeric("about 41.4 km", 42, 0.5) == 0.0
    assert numeric(3, "3", 0) == 1.0
    assert numeric("none", 3, 10) == 0.0 and numeric(True, 1, 0) == 0.0


def test_jsonpath_equals_reads_the_output() -> None:
    spec = parse_scorer({"kind": "jsonpath", "path": "$.classified.intent"}, "s")
    item = Item(id="1", input={}, expected="order_status", has_expected=True)
    assert score_one(spec, item, {"classified": {"intent": "order_status"}}, "raw text") == 1.0
    assert score_one(spec, item, {"classified": {"intent": "other"}}, None) == 0.0
    assert score_one(spec, item, {"nothing": 1}, None) == 0.0  # the path matches nothing
    assert score_one(spec, Item(id="2", input={}), {"classified": {"intent": "x"}}, None) is None  # no expected


def test_a_scorer_can_compare_with_a_part_of_the_expected_value() -> None:
    spec = parse_scorer({"kind": "jsonpath", "path": "$.diet.style", "expected_path": "$.style"}, "s")
    item = Item(id="1", input={}, expected={"style": "vegan", "note": "x"}, has_expected=True)
    assert score_one(spec, item, {"diet": {"style": "vegan"}}, None) == 1.0
    assert score_one(spec, item, {"diet": {"style": "balanced"}}, None) == 0.0
    assert score_one(spec, Item(id="2", input={}, expected={}, has_expected=True), {"diet": {}}, None) is None
    with pytest.raises(ScorerError, match="expected_path 'style' is not a JSONPath"):
        parse_scorer({"kind": "exact", "expected_path": "style"}, "s")


def test_scorers_read_the_answer_text_unless_given_a_path() -> None:
    item = Item(id="1", input={}, expected="hi", has_expected=True)
    assert score_one(ScorerSpec("exact"), item, {"text": "no"}, "hi") == 1.0
    assert score_one(ScorerSpec("exact"), item, "hi", None) == 1.0  # no text: the output itself
    schema = {"type": "object", "required": ["t"]}
    assert score_one(ScorerSpec("json_schema", path="$.o"), item, {"o": {"t": 1}}, None, schema) == 1.0
    assert score_one(ScorerSpec("json_schema"), item, {}, '{"x": 1}', schema) == 0.0
    assert score_one(ScorerSpec("json_schema"), item, {}, "{}", None) is None  # no schema anywhere


def test_scorer_configuration_errors_are_clear() -> None:
    with pytest.raises(ScorerError, match="needs a path"):
        parse_scorer({"kind": "jsonpath"}, "s")
    with pytest.raises(ScorerError, match="not a regular expression"):
        parse_scorer({"kind": "regex", "pattern": "("}, "s")
    with pytest.raises(ScorerError, match="is not a JSONPath"):
        parse_scorer({"kind": "exact", "path": "classified"}, "s")
    with pytest.raises(ScorerError, match="weight"):
        parse_scorer({"kind": "exact", "weight": -1}, "s")
    with pytest.raises(ScorerError, match="not a valid JSON Schema"):
        parse_scorer({"kind": "json_schema", "schema": {"type": 5}}, "s")


def test_scorer_flags() -> None:
    assert parse_scorer_flag("jsonpath:$.classified.intent*2") == ScorerSpec("jsonpath", 2.0,
                                                                           path="$.classified.intent")
    assert parse_scorer_flag("regex:^\\d+$").pattern == "^\\d+$"
    assert parse_scorer_flag("numeric:0.5").tolerance == 0.5
    assert parse_scorer_flag("judge").kind == "judge"
    with pytest.raises(ScorerError, match="takes no argument"):
        parse_scorer_flag("exact:x")


def test_weights_combine_the_scorers_that_applied() -> None:
    specs = [ScorerSpec("exact", 3), ScorerSpec("contains", 1), ScorerSpec("judge", 0)]
    assert combine(specs, {"exact": 1.0, "contains": 0.0, "judge": 0.2}) == 0.75
    assert combine(specs, {"exact": None, "contains": 0.5, "judge": 1.0}) == 0.5
    assert combine(specs, {"exact": None, "contains": None}) is None
    assert default_scorers(True, JudgeSpec("m")) == [ScorerSpec("exact"), ScorerSpec("judge")]
    assert default_scorers(False, None) == []


def test_the_judges_answer_is_parsed_and_bounded() -> None:
    assert parse_judge_answer('{"score": 7}') == 0.7
    assert parse_judge_answer("8/10, good") == 0.8
    assert parse_judge_answer("12") == 1.0 and parse_judge_answer("-3") == 0.0
    assert parse_judge_answer("7.5") == 0.75
    with pytest.raises(JudgeError, match="holds no number from 0 to 10"):
        parse_judge_answer("The answer is correct")


def test_the_judge_sees_the_rubric_reference_and_answer() -> None:
    item = Item(id="1", input={"q": 1}, expected="order_status", has_expected=True)
    variables = judge_variables(item, {"a": 1}, "be right")
    assert variables == {"rubric": "be right", "input": '{"q": 1}', "reference": "order_status", "answer": '{"a": 1}'}
    listed = Item(id="2", input="x", expected=["cat"], has_expected=True, rubric="mine", reference=None)
    assert judge_variables(listed, "t", "default")["reference"] is None
    assert judge_variables(listed, "t", "default")["rubric"] == "mine"


# --- records and aggregation ----------------------------------------------------------------------


def test_percentiles_interpolate_between_ranks() -> None:
    assert percentile([], 50) is None
    assert percentile([5.0], 95) == 5.0
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([float(n) for n in range(1, 101)], 95) == pytest.approx(95.05)
    assert percentile([3, 1, 2], 50) == 2


def records() -> list[ItemRecord]:
    return [
        ItemRecord("a", "1", "completed", input_tokens=10, output_tokens=5, cost_usd=0.001, latency_ms=100,
                   ttft_ms=10, schema_valid=True, score=1.0),
        ItemRecord("a", "2", "completed", input_tokens=20, output_tokens=7, cost_usd=0.002, latency_ms=300,
                   ttft_ms=30, schema_valid=True, score=0.5),
        ItemRecord("a", "3", "failed", error="Baton.LLM.InvalidResponse", input_tokens=12, output_tokens=16,
                   cost_usd=0.003, latency_ms=200, schema_valid=False),
        ItemRecord("a", "4", "failed", error="Baton.LLM.PromptError", latency_ms=1),
        ItemRecord("b", "1", "completed", input_tokens=1, output_tokens=1, latency_ms=50, score=None),
    ]


def test_a_variants_summary_adds_up() -> None:
    summary = summarise("a", records())
    assert summary["items"] == 4 and summary["completed"] + summary["failed"] == 4
    assert summary["failed_by_error"] == {"Baton.LLM.InvalidResponse": 1, "Baton.LLM.PromptError": 1}
    assert summary["schema_valid"] == round(2 / 3, 3)
    assert summary["input_tokens_sum"] == 42 and summary["output_tokens_sum"] == 28
    assert summary["input_tokens_mean"] == 14.0 and summary["output_tokens_mean"] == round(28 / 3, 2)
    assert summary["cost_usd"] == 0.006
    assert summary["latency_p50_ms"] == 200.0 and summary["latency_p95_ms"] == 290.0  # completed items only
    assert summary["ttft_p50_ms"] == 20.0
    assert summary["score"] == 0.375  # (1 + 0.5 + 0 + 0) / 4: a failed item scores 0
    other = summarise("b", records())
    assert other["score"] is None and other["schema_valid"] is None and other["cost_usd"] is None


def test_the_best_per_column_is_marked() -> None:
    summaries = [summarise("a", records()), summarise("b", records())]
    marks = best(summaries)
    assert marks["latency_p50_ms"] == {"b"} and marks["failed"] == {"b"} and "score" not in marks
    table = render_table(summaries)
    assert table.splitlines()[0].split()[:3] == ["variant", "ok", "failed"]
    assert "50.0*" in table and "a failed: Baton.LLM.InvalidResponse x1, Baton.LLM.PromptError x1" in table


def test_csv_and_deltas() -> None:
    summaries = [summarise("a", records()), summarise("b", records())]
    text = to_csv(summaries)
    assert text.splitlines()[0].startswith("variant,items,completed,failed,failed_by_error")
    assert '"{""Baton.LLM.InvalidResponse"": 1, ""Baton.LLM.PromptError"": 1}"' in text
    later = [dict(summaries[0], score=0.5, latency_p50_ms=100.0), {**summaries[1], "variant": "c"}]
    rows = compare(summaries, later)
    assert [(r["variant"], r["in"]) for r in rows] == [("a", "both"), ("b", "A only"), ("c", "B only")]
    assert rows[0]["score"]["delta"] == 0.125 and rows[0]["latency_p50_ms"]["delta"] == -100.0
    assert rows[1]["score"]["delta"] is None
    assert "+0.125" in render_compare(rows)


def test_a_test_state_report_becomes_a_record() -> None:
    report = {"status": "SUCCEEDED", "output": {"classified": {"intent": "other"}},
              "inspectionData": {"result": {"Text": '{"intent": "other"}', "Json": {"intent": "other"}},
                                 "llm": {"model": "smollm2", "inputTokens": 70, "outputTokens": 9, "latencyMs": 800.5,
                                         "timeToFirstTokenMs": 300.2, "costUsd": 0.0}}}
    record = record_from_test_state("v", "1", report, {})
    assert (record.status, record.text, record.input_tokens, record.output_tokens, record.ttft_ms,
            record.cost_usd) == ("completed", '{"intent": "other"}', 70, 9, 300.2, 0.0)
    priced = record_from_test_state("v", "1", report, {"smollm2": Price(input_per_million=1e6, output_per_million=0)})
    assert priced.cost_usd == 70.0
    failed = record_from_test_state("v", "2", {"status": "FAILED", "error": "Baton.LLM.InvalidResponse", "cause": "c",
                                               "inspectionData": {"llm": {"inputTokens": 3}}}, {})
    assert (failed.status, failed.error, failed.schema_valid, failed.input_tokens) == (
        "failed", "Baton.LLM.InvalidResponse", False, 3)
    caught = record_from_test_state("v", "3", {"status": "CAUGHT_ERROR", "error": "E", "output": {}}, {})
    assert caught.status == "failed" and caught.error == "E" and caught.output is None


def test_a_whole_execution_sums_its_tasks_usage() -> None:
    usage = [{"model": "a", "input_tokens": 10, "output_tokens": 2, "cost_usd": 0.5, "ms": 100},
             {"model": "b", "input_tokens": 5, "output_tokens": 1, "cost_usd": None, "ms": 50}]
    record = record_from_execution("v", "1", "SUCCEEDED", {"x": 1}, None, None, usage,
                                   {"b": Price(input_per_million=1e6, output_per_million=1e6)})
    assert (record.input_tokens, record.output_tokens, record.cost_usd, record.llm_latency_ms) == (15, 3, 6.5, 150)
    failed = record_from_execution("v", "1", "FAILED", None, "States.TaskFailed", "boom", [], {})
    assert failed.error == "States.TaskFailed" and failed.input_tokens is None
    assert cost("m", 1, 1, None, {}) is None and cost(None, 1, 1, 0.25, {}) == 0.25


def test_a_record_round_trips_through_json() -> None:
    record = records()[2]
    assert ItemRecord.from_dict(json.loads(json.dumps(record.as_dict()))) == record


def test_an_item_is_scored_by_every_scorer_with_the_judges_grade_given() -> None:
    from orchestrator.evaluation.scorers import score_item

    specs = [ScorerSpec("jsonpath", 2, path="$.i"), ScorerSpec("judge", 1)]
    item = Item(id="1", input={}, expected="a", has_expected=True)
    assert score_item(specs, item, {"i": "a"}, None, judge_score=0.4).score == pytest.approx(2.4 / 3)
    unparsed = score_item(specs, item, {"i": "b"}, None, judge_score=None)  # the judge's answer did not parse
    assert unparsed.scores == {"jsonpath:$.i": 0.0, "judge": None} and unparsed.score == 0.0

"""Run an eval: every dataset item through every variant, with the code that runs in production.

Each variant is a copy of the definition with the target state's Parameters overridden; an item
runs the state with `run_test_state` (or the whole workflow with `run_execution`), the LLM, HTTP
and retrieval Tasks answered in-process by one shared `LocalIntegrations` (the step services' own
handlers; the offline model started on demand). At most `concurrency` items run at once. A bad
variant, a dataset line that is not JSON, a judge answer without a grade or a failing item is one
problem line or one failed record: the rest of the run goes on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.asl.errors import DefinitionError
from orchestrator.asl.execution import RunTask, TaskFailed, TaskSucceeded
from orchestrator.asl.model import StateMachine, parse_definition
from orchestrator.evaluation.config import EvalConfig, default_scorers
from orchestrator.evaluation.dataset import Item, dataset_sha256, parse_dataset
from orchestrator.evaluation.errors import DatasetError, EvalError, JudgeError, VariantError
from orchestrator.evaluation.records import record_from_execution, record_from_test_state
from orchestrator.evaluation.report import ItemRecord, render_table, summarise_all
from orchestrator.evaluation.scorers import (
    JUDGE_PROMPT,
    JUDGE_SCHEMA,
    judge_variables,
    parse_judge_answer,
    score_item,
)
from orchestrator.evaluation.store import new_run_id, save_run
from orchestrator.evaluation.variants import Variant, apply_variant, check_model, iter_states
from orchestrator.local.runner import Answer, LocalRunError, TaskResolver, run_execution
from orchestrator.local.test_state import GivenOutcome, run_test_state
from orchestrator.local.usage import usage_rows
from schemas.steps import StepCommand
from steps.inprocess import IntegrationUnavailable, LocalIntegrations, LocalIntegrationsConfig
from steps.sdk.handler import StepHandler, run_to_outcome

Progress = Callable[[int, int, int], None]  # (items done, items in all, items failed)


@dataclass
class EvalReport:
    """What an eval produced: the resolved config, the dataset's hash, per-item records, the
    per-variant summaries and the problems met (one line each)."""

    run_id: str
    config: dict[str, Any]
    dataset_sha256: str
    items: list[Item]
    records: list[ItemRecord]
    summaries: list[dict[str, Any]]
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    run_dir: Path | None = None

    def table(self) -> str:
        return render_table(self.summaries)

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "dataset_sha256": self.dataset_sha256, "items": len(self.items),
                "seconds": self.seconds, "summaries": self.summaries, "problems": self.problems,
                "config": self.config}


@dataclass
class _Prepared:
    variant: Variant
    document: dict[str, Any]  # the definition with the variant's overrides
    machine: StateMachine
    schema: dict[str, Any] | None  # the target state's JsonSchema, if it has one


def run_eval(config: EvalConfig, *, progress: Progress | None = None,
             notice: Callable[[str], None] | None = None, keep: bool = True) -> EvalReport:
    """Run the eval to its end (blocking); with `keep`, store it under `.baton/evals/<run id>/`."""
    return asyncio.run(evaluate(config, progress=progress, notice=notice, keep=keep))


async def evaluate(config: EvalConfig, *, progress: Progress | None = None,
                   notice: Callable[[str], None] | None = None, keep: bool = True,
                   integrations: LocalIntegrations | None = None) -> EvalReport:
    """`run_eval` for a caller already in an event loop (the API). `integrations`: share a
    caller's; by default one is made for this eval and closed after it."""
    started = time.perf_counter()
    text = _read(config.dataset_file, "dataset")
    items, problems = parse_dataset(text, Path(config.dataset_file).name)
    if config.limit is not None:
        items = items[: config.limit]
    if not items:
        raise DatasetError(f"{config.dataset_file}: no usable dataset line", problems)
    variants = config.variants or [Variant(name="definition")]
    prepared = _prepare(config, variants, problems)
    scorers = config.scorers or default_scorers(any(i.has_expected for i in items), config.judge)
    if config.judge is None and any(s.kind == "judge" for s in scorers):
        problems.append("the judge scorer needs a judge model (judge: in the variants file, or --judge MODEL); "
                        "it is left out")
    owned = integrations is None
    integrations = integrations or LocalIntegrations(LocalIntegrationsConfig(
        llm_config=config.llm_config, connections=config.connections,
        definition={"variants": [p.document for p in prepared]},  # every PromptRef store the variants name
        definition_dir=Path(config.definition_file).resolve().parent, notice=notice or (lambda line: None),
        llm_overrides={"cache": {"enabled": True}} if config.cache else {}))
    try:
        judge_on = await _check_models(integrations, config, prepared, problems)
        if not prepared:
            raise EvalError(f"no variant left to run: {len(variants)} refused (the problems say why)", problems)
        run = _Run(config, integrations, scorers if judge_on else [s for s in scorers if s.kind != "judge"],
                   judge_on, progress, len(items) * len(prepared))
        records = await run.all(prepared, items)
    finally:
        if owned:
            await integrations.aclose()
    problems.extend(run.problems)
    problems.extend(_failure_lines(records))
    report = EvalReport(run_id=new_run_id(), config=config.as_dict(), dataset_sha256=dataset_sha256(text),
                        items=items, records=records,
                        summaries=summarise_all([p.variant.name for p in prepared], records),
                        problems=problems, seconds=round(time.perf_counter() - started, 3))
    if keep:
        report.run_dir = save_run(report.run_id, report.as_dict(), records, text, config.definition)
    return report


def _read(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise DatasetError(f"cannot read the {what} {path}: {exc.strerror or exc}") from None


def _prepare(config: EvalConfig, variants: list[Variant], problems: list[str]) -> list[_Prepared]:
    """Each variant's state machine; a variant that cannot be built is a problem line."""
    prepared, names = [], set()
    for variant in variants:
        if variant.name in names:
            problems.append(f"variant {variant.name!r} is given twice; the second is skipped")
            continue
        try:
            document = apply_variant(config.definition, config.state, variant)
            machine = parse_definition(document)
        except VariantError as exc:
            problems.append(f"{exc}; variant skipped")
            continue
        except DefinitionError as exc:
            problems.append(f"variant {variant.name!r}: the definition it makes is invalid: {exc.problems[0]}; "
                            "variant skipped")
            continue
        names.add(variant.name)
        prepared.append(_Prepared(variant, document, machine, _state_schema(document, config.state)))
    return prepared


def _state_schema(document: dict[str, Any], state: str | None) -> dict[str, Any] | None:
    for name, body in iter_states(document):
        if name == state:
            schema = (body.get("Parameters") or {}).get("JsonSchema")
            return schema if isinstance(schema, dict) else None
    return None


async def _check_models(integrations: LocalIntegrations, config: EvalConfig, prepared: list[_Prepared],
                        problems: list[str]) -> bool:
    """Refuse variants naming a model the LLM configuration does not know; True if the judge can run."""
    if not any(p.variant.model or p.variant.provider for p in prepared) and config.judge is None:
        return False
    try:
        handler = await integrations.handler_for("llm")
    except IntegrationUnavailable as exc:
        raise EvalError(str(exc)) from None
    settings = getattr(handler, "settings", None) or getattr(getattr(handler, "inner", None), "settings", None)
    models = set(getattr(settings, "models", {}) or {})
    providers = set(getattr(settings, "providers", {}) or {})
    for entry in list(prepared):
        try:
            check_model(entry.variant, models, providers)
        except VariantError as exc:
            problems.append(f"{exc}; variant skipped")
            prepared.remove(entry)
    if config.judge is None:
        return False
    try:
        check_model(Variant(name="judge", model=config.judge.model, provider=config.judge.provider), models, providers)
    except VariantError as exc:
        problems.append(f"{exc}; the judge scorer is left out")
        return False
    return True


def _failure_lines(records: list[ItemRecord]) -> list[str]:
    """One line per variant and error: how many items failed so, and the first cause."""
    seen: dict[tuple[str, str], tuple[int, str]] = {}
    for record in records:
        if record.status != "completed":
            key = (record.variant, record.error or "unknown")
            count, cause = seen.get(key, (0, record.cause or ""))
            seen[key] = (count + 1, cause)
    return [f"variant {variant!r}: {count} item(s) failed with {error}: {cause}"
            for (variant, error), (count, cause) in seen.items()]


class _Run:
    """One eval's items in flight: the semaphore, the judge, the progress count."""

    def __init__(self, config: EvalConfig, integrations: LocalIntegrations, scorers: list[Any], judge_on: bool,
                 progress: Progress | None, total: int) -> None:
        self.config, self.integrations, self.scorers, self.judge_on = config, integrations, scorers, judge_on
        self.progress, self.total, self.done, self.failed = progress, total, 0, 0
        self.gate = asyncio.Semaphore(max(1, config.concurrency))
        self.problems: list[str] = []
        self.answers: dict[str, Answer] = {state: _fixed(value) for state, value in config.results.items()}

    async def all(self, prepared: list[_Prepared], items: list[Item]) -> list[ItemRecord]:
        # Items outer, variants inner: every variant advances alike, so an interrupted run compares fairly.
        jobs = [self._one(entry, item, index) for index, item in enumerate(items) for entry in prepared]
        return list(await asyncio.gather(*jobs))

    async def _one(self, entry: _Prepared, item: Item, index: int) -> ItemRecord:
        async with self.gate:
            record = await self._execute(entry, item)
            if record.status == "completed":
                await self._score(entry, item, record, index)
        self.done += 1
        self.failed += record.status != "completed"
        if self.progress is not None:
            self.progress(self.done, self.total, self.failed)
        return record

    async def _execute(self, entry: _Prepared, item: Item) -> ItemRecord:
        resolver = TaskResolver(integrations=self.integrations, answers=self.answers)
        started = time.perf_counter()
        try:
            if self.config.state is not None:
                report = await run_test_state(entry.machine, self.config.state, item.input, given=GivenOutcome(),
                                              resolver=resolver)
                record = record_from_test_state(entry.variant.name, item.id, report, self.config.prices)
            else:
                result = await run_execution(entry.machine, item.input, resolver=resolver,
                                             state_machine_name=Path(self.config.definition_file).stem,
                                             execution_name=f"eval-{entry.variant.name}-{item.id}")
                record = record_from_execution(entry.variant.name, item.id, result.status, result.output,
                                               result.error, result.cause, usage_rows(result.history),
                                               self.config.prices)
        except (LocalRunError, IntegrationUnavailable) as exc:
            record = ItemRecord(entry.variant.name, item.id, "failed", error=type(exc).__name__, cause=str(exc))
        record.latency_ms = round((time.perf_counter() - started) * 1000, 3)
        if entry.schema is not None and record.schema_valid is None and record.status == "completed":
            record.schema_valid = True  # the LLM step validated the answer against JsonSchema
        return record

    async def _score(self, entry: _Prepared, item: Item, record: ItemRecord, index: int) -> None:
        judge = self.config.judge
        graded = judge is not None and (judge.max_items is None or index < judge.max_items)
        judged = await self._judge(item, record) if graded and any(s.kind == "judge" for s in self.scorers) else None
        scored = score_item(self.scorers, item, record.output, record.text, entry.schema, judged)
        record.scores, record.score = scored.scores, scored.score

    async def _judge(self, item: Item, record: ItemRecord) -> float | None:
        judge = self.config.judge
        assert judge is not None
        handler: StepHandler | None = await self.integrations.handler_for("llm")
        assert handler is not None
        parameters: dict[str, Any] = {"Model": judge.model, "Prompt": JUDGE_PROMPT, "Temperature": 0,
                                      "MaxTokens": judge.max_tokens, "ResponseFormat": "json",
                                      "JsonSchema": JUDGE_SCHEMA,
                                      "Variables": judge_variables(item, record.text if record.text is not None
                                                                   else record.output, judge.rubric)}
        if judge.provider:
            parameters["Provider"] = judge.provider
        command = StepCommand(execution_id="arn:baton:states:local:execution:eval:judge",
                              task_id=f"judge-{record.variant}-{item.id}", service="llm", resource="baton:llm",
                              state_name="Judge", parameters=parameters)
        outcome = await run_to_outcome(handler, command)
        try:
            if not outcome.succeeded:
                raise JudgeError(f"the judge call failed with {outcome.error}: {outcome.cause}")
            return parse_judge_answer(str((outcome.output or {}).get("Text", "")))
        except JudgeError as exc:
            record.judge_error = str(exc)
            self.problems.append(f"variant {record.variant!r}, item {item.id!r}: {exc}; its judge score is left out")
            return None


def _fixed(output: Any) -> Answer:
    async def answer(command: RunTask) -> TaskSucceeded | TaskFailed:
        return TaskSucceeded(task_id=command.task_id, output=output)
    return answer

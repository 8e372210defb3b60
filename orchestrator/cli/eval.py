"""`baton eval`: compare variants of a sub-task on a dataset (parse, call `orchestrator.evaluation`, print).

    baton eval FLOW.json --state Outline --dataset eval/dataset.jsonl --variants eval/variants.yaml
    baton eval FLOW.json --state Outline --dataset D.jsonl --variant small:model=smollm2 \\
          --variant big:model=smollm2-b,prompt=@v2 --scorer 'jsonpath:$.outline.title' --judge smollm2-b
    baton eval compare RUN_A RUN_B
    baton eval rerun RUN
    baton eval list

`baton eval FILE ...` is `baton eval run FILE ...`. Registered lazily in `orchestrator.cli`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from orchestrator.cli._shared import fail, parse_json_arg, read_text
from orchestrator.evaluation import (
    EvalConfig,
    EvalError,
    EvalReport,
    Variant,
    VariantError,
    parse_eval_file,
    run_eval,
)
from orchestrator.evaluation.config import parse_judge
from orchestrator.evaluation.report import compare, render_compare, to_csv
from orchestrator.evaluation.scorers import parse_scorer_flag
from orchestrator.evaluation.store import find_run, list_runs
from orchestrator.evaluation.variants import parse_variant_flag


class _EvalGroup(click.Group):
    """A group whose default command is `run`: `baton eval FILE ...` runs an eval."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group("eval", cls=_EvalGroup)
def eval_group() -> None:
    """Compare variants of a state (model, prompt version, temperature, max tokens) on a dataset.

    `baton eval FILE --state S --dataset D.jsonl --variants V.yaml` is `baton eval run ...`."""


@eval_group.command("run")
@click.argument("file")
@click.option("--state", "state_name", help="The state to evaluate (default: the whole workflow).")
@click.option("--dataset", required=True, type=click.Path(dir_okay=False),
              help="JSONL: one {\"input\", \"expected\"?, \"reference\"?, \"rubric\"?, \"id\"?} per line.")
@click.option("--variants", "variants_file", type=click.Path(dir_okay=False),
              help="A YAML file: variants:, scorers:, judge:, prices: (see orchestrator/evaluation/config.py).")
@click.option("--variant", "variant_flags", multiple=True, metavar="NAME:key=value,...",
              help="A variant (repeatable): keys model, provider, prompt, system, temperature, max_tokens; "
                   "e.g. big:model=smollm2-b,prompt=@v2.")
@click.option("--only", multiple=True, metavar="NAME", help="Run only these variants of the file (repeatable).")
@click.option("--scorer", "scorer_flags", multiple=True, metavar="KIND[:ARG][*WEIGHT]",
              help="A scorer (repeatable): exact, contains, regex:PATTERN, jsonpath:PATH, json_schema[:PATH], "
                   "numeric:TOLERANCE, judge; e.g. 'jsonpath:$.classified.intent*2'.")
@click.option("--judge", "judge_model", metavar="MODEL", help="The judge model (overrides the file's judge:).")
@click.option("--concurrency", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Items run at once.")
@click.option("--limit", type=click.IntRange(1), help="Use the first N dataset items only.")
@click.option("--result", "results", multiple=True, metavar="STATE=JSON",
              help="Answer every Task of STATE with this result (a human review in a whole-workflow eval).")
@click.option("--llm-config", type=click.Path(dir_okay=False),
              help="LLM providers, models, prices, prompt stores (default: $BATON_LLM_CONFIG_FILE; none: the "
                   "offline model, started on demand).")
@click.option("--connections", type=click.Path(dir_okay=False), help="HTTP connections file.")
@click.option("--cache", is_flag=True, help="Reuse LLM answers of identical deterministic calls.")
@click.option("--json", "json_file", type=click.Path(dir_okay=False), help="Also write the summary JSON here.")
@click.option("--csv", "csv_file", type=click.Path(dir_okay=False), help="Also write the summary CSV here.")
def run_command(file: str, state_name: str | None, dataset: str, variants_file: str | None,
                variant_flags: tuple[str, ...], only: tuple[str, ...], scorer_flags: tuple[str, ...],
                judge_model: str | None, concurrency: int, limit: int | None, results: tuple[str, ...],
                llm_config: str | None, connections: str | None, cache: bool, json_file: str | None,
                csv_file: str | None) -> None:
    """Run every dataset input through every variant; print the table and keep the run."""
    from orchestrator.asl.model import load_document

    problems: list[str] = []
    try:
        loaded = parse_eval_file(load_document(read_text(variants_file)) if variants_file else None,
                                 variants_file or "variants file")
    except (EvalError, ValueError) as exc:
        fail(str(exc))
    problems.extend(loaded.problems)
    variants = _select(loaded.variants, only, problems) + _flag_variants(variant_flags, problems)
    try:
        scorers = [parse_scorer_flag(flag) for flag in scorer_flags] or loaded.scorers
        judge = parse_judge(judge_model, "--judge") if judge_model else loaded.judge
    except EvalError as exc:
        fail(str(exc))
    definition = load_document(read_text(file))
    if not isinstance(definition, dict):
        fail(f"{file}: not a state machine definition (a JSON or YAML object)")
    config = EvalConfig(definition_file=str(Path(file).resolve()), dataset_file=str(Path(dataset).resolve()),
                        definition=definition, state=state_name, variants=variants, scorers=scorers, judge=judge,
                        prices=loaded.prices, concurrency=concurrency, limit=limit, llm_config=llm_config,
                        connections=connections, cache=cache, results=_results(results))
    report = _run(config, problems)
    _write_extra(report, json_file, csv_file)


def _select(variants: list[Variant], only: tuple[str, ...], problems: list[str]) -> list[Variant]:
    if not only:
        return variants
    names = {v.name for v in variants}
    for name in only:
        if name not in names:
            problems.append(f"--only {name!r}: no such variant (known: {', '.join(sorted(names)) or 'none'}); ignored")
    return [v for v in variants if v.name in only]


def _flag_variants(flags: tuple[str, ...], problems: list[str]) -> list[Variant]:
    variants = []
    for flag in flags:
        try:
            variants.append(parse_variant_flag(flag))
        except VariantError as exc:
            problems.append(f"{exc}; variant skipped")
    return variants


def _results(pairs: tuple[str, ...]) -> dict[str, Any]:
    results = {}
    for pair in pairs:
        state, sep, value = pair.partition("=")
        if not sep or not state:
            fail(f"--result {pair!r}: expected STATE=JSON")
        results[state] = parse_json_arg(value, f"--result {state}")
    return results


def _run(config: EvalConfig, problems: list[str]) -> EvalReport:
    """Run, with a progress bar on a terminal (infra.progress); print the problems, the table and
    where the run is kept."""
    from infra.progress import bar

    with bar("eval", unit="item") as progress:
        def advance(done: int, total: int, failed: int) -> None:
            progress.total = total
            progress.set_postfix_str(f"{failed} failed" if failed else "", refresh=False)
            progress.update(done - progress.n)

        try:
            report = run_eval(config, progress=advance, notice=lambda line: click.echo(f"baton: {line}", err=True))
        except EvalError as exc:
            progress.close()
            for line in [*problems, *exc.problems]:
                click.echo(f"eval: {line}", err=True)
            fail(str(exc))
    report.problems[:0] = problems
    for line in report.problems:
        click.echo(f"eval: {line}", err=True)
    click.echo(report.table())
    items = len(report.items)
    click.echo(f"\n{items} input(s) x {len(report.summaries)} variant(s) in {report.seconds:.1f} s; "
               f"run {report.run_id} kept in {report.run_dir}")
    return report


def _write_extra(report: EvalReport, json_file: str | None, csv_file: str | None) -> None:
    if json_file:
        Path(json_file).write_text(json.dumps(report.as_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
    if csv_file:
        Path(csv_file).write_text(to_csv(report.summaries), encoding="utf-8")


@eval_group.command("compare")
@click.argument("run_a")
@click.argument("run_b")
@click.option("--json", "as_json", is_flag=True, help="Print the deltas as JSON.")
def compare_command(run_a: str, run_b: str, as_json: bool) -> None:
    """Per-variant deltas between two kept runs (B - A)."""
    try:
        a, b = find_run(run_a), find_run(run_b)
    except EvalError as exc:
        fail(str(exc))
    rows = compare(a.summary.get("summaries", []), b.summary.get("summaries", []))
    if as_json:
        click.echo(json.dumps({"a": a.run_id, "b": b.run_id, "variants": rows}, indent=2))
        return
    if a.summary.get("dataset_sha256") != b.summary.get("dataset_sha256"):
        click.echo("eval: the two runs used different datasets; the deltas compare unlike inputs", err=True)
    click.echo(f"A {a.run_id}  B {b.run_id}")
    click.echo(render_compare(rows))


@eval_group.command("rerun")
@click.argument("run")
@click.option("--concurrency", type=click.IntRange(1, 64), help="Items run at once (default: the run's).")
def rerun_command(run: str, concurrency: int | None) -> None:
    """Run a kept run again on the same inputs (its dataset copy) and the definition as it is now;
    print the table and the deltas against the kept run."""
    from orchestrator.asl.model import load_document
    from orchestrator.evaluation.config import parse_prices
    from orchestrator.evaluation.scorers import parse_scorer
    from orchestrator.evaluation.variants import parse_variant_entry

    try:
        stored = find_run(run)
        saved = stored.config
        config = EvalConfig(
            definition_file=saved["definition_file"], dataset_file=str(stored.folder / "dataset.jsonl"),
            state=saved.get("state"), variants=[parse_variant_entry(v, "config.json") for v in saved["variants"]],
            scorers=[parse_scorer(s, "config.json") for s in saved["scorers"]],
            judge=parse_judge(saved.get("judge"), "config.json"), prices=parse_prices(saved.get("prices"), "prices"),
            concurrency=concurrency or saved.get("concurrency", 2), limit=saved.get("limit"),
            llm_config=saved.get("llm_config"), connections=saved.get("connections"),
            cache=bool(saved.get("cache")), results=saved.get("results") or {})
    except (EvalError, KeyError) as exc:
        fail(f"{run}: cannot repeat this run: {exc}")
    definition = load_document(read_text(config.definition_file))
    config.definition = definition if isinstance(definition, dict) else {}
    report = _run(config, [])
    click.echo(f"\nagainst {stored.run_id} (B - A):")
    click.echo(render_compare(compare(stored.summary.get("summaries", []), report.summaries)))


@eval_group.command("list")
def list_command() -> None:
    """The kept runs, oldest first: id, state, variants, items, best score."""
    for folder in list_runs():
        try:
            summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        variants = summary.get("summaries", [])
        scores = [s["score"] for s in variants if s.get("score") is not None]
        click.echo(f"{folder.name}  state={summary.get('config', {}).get('state') or '(workflow)'}  "
                   f"variants={','.join(s['variant'] for s in variants)}  items={summary.get('items')}  "
                   f"best score={max(scores) if scores else '-'}")


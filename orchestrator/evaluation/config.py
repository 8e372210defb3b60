"""What one eval runs (pure): the definition and state, the dataset, the variants, the scorers,
the judge, notional prices and the concurrency; and the variants file that gives most of it.

    variants:
      - {name: small-v1, model: smollm2, prompt_ref: "story:outline@v1"}
      - {name: big-v2, model: smollm2-b, prompt_ref: "@v2", max_tokens: 64}
    scorers:
      - {kind: jsonpath, path: $.classified.intent, weight: 2}
      - {kind: judge, weight: 1}
    judge: {model: smollm2-b, rubric: "Is the outline a coherent two-chapter plan?", max_items: 10}
    prices:                 # notional USD per million tokens, for this eval's cost column only
      smollm2-b: {input_per_million: 0.5, output_per_million: 1.5}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from orchestrator.evaluation.errors import EvalError, ScorerError, VariantError
from orchestrator.evaluation.scorers import JudgeSpec, ScorerSpec, parse_scorer
from orchestrator.evaluation.variants import Variant, parse_variant_entry
from steps.llm.config import Price

FILE_KEYS = ("variants", "scorers", "judge", "prices")


@dataclass
class EvalConfig:
    """Everything `run_eval` needs. `definition` is the parsed document of `definition_file`."""

    definition_file: str
    dataset_file: str
    definition: dict[str, Any] = field(default_factory=dict)
    state: str | None = None
    variants: list[Variant] = field(default_factory=list)
    scorers: list[ScorerSpec] = field(default_factory=list)
    judge: JudgeSpec | None = None
    prices: dict[str, Price] = field(default_factory=dict)
    concurrency: int = 2
    limit: int | None = None  # the first N dataset items only
    llm_config: str | None = None
    connections: str | None = None
    cache: bool = False
    results: dict[str, Any] = field(default_factory=dict)  # STATE -> a fixed result (a human review)

    def as_dict(self) -> dict[str, Any]:
        """The resolved configuration, as a kept run records it (and `rerun` reads it back)."""
        return {"definition_file": self.definition_file, "dataset_file": self.dataset_file, "state": self.state,
                "variants": [v.as_dict() for v in self.variants], "scorers": [s.as_dict() for s in self.scorers],
                "judge": self.judge.as_dict() if self.judge else None,
                "prices": {name: price.model_dump() for name, price in self.prices.items()},
                "concurrency": self.concurrency, "limit": self.limit, "llm_config": self.llm_config,
                "connections": self.connections, "cache": self.cache, "results": self.results}


@dataclass
class EvalFile:
    """A variants file's content, and one line per entry it refused (the others are used)."""

    variants: list[Variant] = field(default_factory=list)
    scorers: list[ScorerSpec] = field(default_factory=list)
    judge: JudgeSpec | None = None
    prices: dict[str, Price] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def parse_eval_file(document: Any, source: str = "variants file") -> EvalFile:
    """Read a variants file's document. A bad variant is a problem line; a bad scorer, judge or
    price table stops the eval (EvalError): the scores would not mean what the file says."""
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise EvalError(f"{source}: the top level must be a mapping with variants: (and scorers:, judge:, prices:)")
    unknown = sorted(set(document) - set(FILE_KEYS))
    if unknown:
        raise EvalError(f"{source}: unknown key(s) {', '.join(map(str, unknown))} (known: {', '.join(FILE_KEYS)})")
    result = EvalFile()
    entries = document.get("variants") or []
    if not isinstance(entries, list):
        raise EvalError(f"{source}: variants: must be a list of {{name, model, ...}}")
    for index, entry in enumerate(entries):
        try:
            result.variants.append(parse_variant_entry(entry, f"{source}: variants[{index}]"))
        except VariantError as exc:
            result.problems.append(f"{exc}; variant skipped")
    scorers = document.get("scorers") or []
    if not isinstance(scorers, list):
        raise ScorerError(f"{source}: scorers: must be a list of {{kind, weight, ...}}")
    result.scorers = [parse_scorer(entry, f"{source}: scorers[{i}]") for i, entry in enumerate(scorers)]
    result.judge = parse_judge(document.get("judge"), f"{source}: judge")
    result.prices = parse_prices(document.get("prices"), f"{source}: prices")
    return result


def parse_judge(entry: Any, where: str) -> JudgeSpec | None:
    """`judge: MODEL` or `judge: {model, provider?, rubric?, max_tokens?, max_items?}`."""
    if entry is None:
        return None
    if isinstance(entry, str):
        entry = {"model": entry}
    if not isinstance(entry, dict) or not isinstance(entry.get("model"), str):
        raise EvalError(f"{where}: give the judge's model, e.g. judge: {{model: smollm2-b, rubric: ...}}")
    fields = ("model", "provider", "rubric", "max_tokens", "max_items")
    unknown = sorted(set(entry) - set(fields))
    if unknown:
        raise EvalError(f"{where}: unknown field(s) {', '.join(map(str, unknown))} ({', '.join(fields)})")
    for key in ("max_tokens", "max_items"):
        value = entry.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise EvalError(f"{where}: {key} must be an integer >= 1")
    values = {key: entry[key] for key in fields if entry.get(key) is not None}
    if "rubric" in values:
        values["rubric"] = str(values["rubric"])
    return JudgeSpec(**values)


def parse_prices(entry: Any, where: str) -> dict[str, Price]:
    if entry is None:
        return {}
    if not isinstance(entry, dict):
        raise EvalError(f"{where}: a mapping of model -> {{input_per_million, output_per_million}}")
    try:
        return {str(name): Price.model_validate(value) for name, value in entry.items()}
    except ValidationError as exc:
        error = exc.errors()[0]
        raise EvalError(f"{where}: {'.'.join(map(str, error['loc']))}: {error['msg']}") from None


def default_scorers(has_expected: bool, judge: JudgeSpec | None) -> list[ScorerSpec]:
    """Without scorers given: exact when the dataset has expected outputs, the judge when named."""
    scorers = [ScorerSpec(kind="exact")] if has_expected else []
    return scorers + ([ScorerSpec(kind="judge")] if judge is not None else [])

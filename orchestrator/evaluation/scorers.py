"""Scorers: how well one answer did, each a number in [0, 1] (pure; the judge's call is the runner's).

    exact        the answer equals `expected` (strings compared trimmed; `case_sensitive: false`)
    contains     the answer holds `expected` (a string, or a list: the fraction found)
    regex        the answer matches `pattern` (re.search)
    jsonpath     the value at `path` in the state's output equals `expected` (or its part at `expected_path`)
    json_schema  the value (at `path`, else the answer) is valid against `schema` (default: the state's JsonSchema)
    numeric      the answer's first number is within `tolerance` of `expected`
    judge        a judge model grades the answer 0-10 on a rubric; divided by 10, bounded to [0, 1]

The answer is the LLM's text for a single state (the whole output for a workflow), or the value at
`path` in the output when a scorer names one. A scorer that does not apply to an item (no
`expected`, or the judge's answer did not parse) is left out of that item's weighted mean.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from jsonschema import SchemaError
from jsonschema.validators import validator_for

from orchestrator.asl.jsonpath import PathNotFound, PathSyntaxError, check, read_document
from orchestrator.evaluation.dataset import Item
from orchestrator.evaluation.errors import JudgeError, ScorerError

KINDS = ("exact", "contains", "regex", "jsonpath", "json_schema", "numeric", "judge")
SCORER_FIELDS = ("kind", "weight", "path", "expected_path", "pattern", "schema", "tolerance", "case_sensitive", "name")
NEEDS_EXPECTED = frozenset({"exact", "contains", "jsonpath", "numeric"})
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
MISSING = object()  # the path matched nothing


@dataclass(frozen=True)
class ScorerSpec:
    """One scorer and its weight in an item's score."""

    kind: str
    weight: float = 1.0
    path: str | None = None
    expected_path: str | None = None  # compare with this part of the item's expected (default: all of it)
    pattern: str | None = None
    schema: dict[str, Any] | None = None
    tolerance: float = 0.0
    case_sensitive: bool = True
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or (f"{self.kind}:{self.path}" if self.path else self.kind)

    def as_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value not in (None, "", 0.0) or key == "kind"}


@dataclass(frozen=True)
class JudgeSpec:
    """The judge: a model (and provider), a rubric, and how long its answer may be."""

    model: str
    provider: str | None = None
    rubric: str = "Is the answer correct, relevant to the input and well written?"
    max_tokens: int = 16  # `{"score": 10}` with the whitespace a model adds
    max_items: int | None = None  # grade the first N dataset items only: a grade costs a call too

    def as_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}


@dataclass
class ItemScore:
    """Each scorer's value (None: not applicable) and their weighted mean (None: none applied)."""

    scores: dict[str, float | None] = field(default_factory=dict)
    score: float | None = None


def parse_scorer(entry: Any, where: str) -> ScorerSpec:
    """A `scorers:` entry: `{kind, weight?, path?, pattern?, schema?, tolerance?, case_sensitive?, name?}`."""
    if isinstance(entry, str):
        entry = {"kind": entry}
    if not isinstance(entry, dict) or entry.get("kind") not in KINDS:
        kind = entry.get("kind") if isinstance(entry, dict) else entry
        raise ScorerError(f"{where}: unknown scorer {kind!r}; known: {', '.join(KINDS)}")
    unknown = sorted(set(entry) - set(SCORER_FIELDS))
    if unknown:
        raise ScorerError(f"{where}: unknown field(s) {', '.join(map(str, unknown))} for scorer {entry['kind']!r}")
    weight = entry.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0 or math.isinf(weight):
        raise ScorerError(f"{where}: weight must be a number >= 0")
    spec = ScorerSpec(kind=entry["kind"], weight=float(weight), path=entry.get("path"),
                      expected_path=entry.get("expected_path"), pattern=entry.get("pattern"),
                      schema=entry.get("schema"), tolerance=float(entry.get("tolerance", 0.0)),
                      case_sensitive=bool(entry.get("case_sensitive", True)), name=str(entry.get("name") or ""))
    _check_spec(spec, where)
    return spec


def parse_scorer_flag(text: str) -> ScorerSpec:
    """`KIND[:ARG][*WEIGHT]`: ARG is jsonpath's path, regex's pattern, numeric's tolerance,
    json_schema's path; e.g. `jsonpath:$.classified.intent*2`, `regex:^\\d+$`, `numeric:0.5`."""
    body, star, weight = text.rpartition("*") if "*" in text else (text, "", "")
    kind, _, arg = body.partition(":")
    entry: dict[str, Any] = {"kind": kind}
    if star:
        try:
            entry["weight"] = float(weight)
        except ValueError:
            raise ScorerError(f"--scorer {text!r}: the weight after '*' is not a number") from None
    if arg:
        key = {"jsonpath": "path", "json_schema": "path", "regex": "pattern", "numeric": "tolerance"}.get(kind)
        if key is None:
            raise ScorerError(f"--scorer {text!r}: {kind} takes no argument")
        entry[key] = float(arg) if key == "tolerance" else arg
    return parse_scorer(entry, f"--scorer {text!r}")


def _check_spec(spec: ScorerSpec, where: str) -> None:
    for key, path in (("path", spec.path), ("expected_path", spec.expected_path)):
        if path is not None:
            try:
                check(path)
            except PathSyntaxError as exc:
                raise ScorerError(f"{where}: {key} {path!r} is not a JSONPath: {exc}") from None
    if spec.kind == "jsonpath" and spec.path is None:
        raise ScorerError(f"{where}: the jsonpath scorer needs a path, e.g. $.classified.intent")
    if spec.kind == "regex":
        try:
            re.compile(spec.pattern or "")
        except re.error as exc:
            raise ScorerError(f"{where}: pattern {spec.pattern!r} is not a regular expression: {exc}") from None
        if not spec.pattern:
            raise ScorerError(f"{where}: the regex scorer needs a pattern")
    if spec.schema is not None:
        try:
            validator_for(spec.schema).check_schema(spec.schema)
        except SchemaError as exc:
            raise ScorerError(f"{where}: schema is not a valid JSON Schema: {exc.message}") from None
    if spec.tolerance < 0:
        raise ScorerError(f"{where}: tolerance must be >= 0")


# --- the scorers ---------------------------------------------------------------------------------


def exact(actual: Any, expected: Any, case_sensitive: bool = True) -> float:
    if isinstance(actual, str) and isinstance(expected, str):
        left, right = actual.strip(), expected.strip()
        return float(left == right if case_sensitive else left.casefold() == right.casefold())
    return float(actual == expected)


def contains(actual: Any, expected: Any, case_sensitive: bool = True) -> float:
    """The fraction of the expected strings found in the answer (one string: 0 or 1)."""
    wanted = [str(e) for e in expected] if isinstance(expected, list) else [str(expected)]
    if not wanted:
        return 1.0
    text = as_text(actual)
    if not case_sensitive:
        text, wanted = text.casefold(), [w.casefold() for w in wanted]
    return sum(1 for w in wanted if w in text) / len(wanted)


def regex(actual: Any, pattern: str) -> float:
    return float(re.search(pattern, as_text(actual)) is not None)


def json_schema(actual: Any, schema: dict[str, Any]) -> float:
    value = actual
    if isinstance(actual, str):
        try:
            value = json.loads(actual)
        except ValueError:
            return 0.0
    return float(validator_for(schema)(schema).is_valid(value))


def numeric(actual: Any, expected: Any, tolerance: float) -> float:
    left, right = first_number(actual), first_number(expected)
    if left is None or right is None:
        return 0.0
    return float(abs(left - right) <= tolerance)


def first_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    found = NUMBER.search(as_text(value))
    return float(found.group()) if found else None


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)


def select(spec: ScorerSpec, output: Any, text: str | None) -> Any:
    """What a scorer looks at: the value at its path in the output, else the answer text."""
    if spec.path is not None:
        try:
            return read_document(spec.path, output)
        except PathNotFound:
            return MISSING
    return text if text is not None else output


def score_one(spec: ScorerSpec, item: Item, output: Any, text: str | None,
              state_schema: dict[str, Any] | None = None) -> float | None:
    """One scorer on one completed item (the judge is scored apart: `parse_judge_answer`)."""
    if spec.kind in NEEDS_EXPECTED and not item.has_expected:
        return None
    expected = item.expected
    if spec.expected_path is not None and spec.kind in NEEDS_EXPECTED:
        try:
            expected = read_document(spec.expected_path, item.expected)
        except PathNotFound:
            return None  # this item's expected says nothing about it
    value = select(spec, output, text)
    if value is MISSING:
        return 0.0
    if spec.kind == "exact" or spec.kind == "jsonpath":
        return exact(value, expected, spec.case_sensitive)
    if spec.kind == "contains":
        return contains(value, expected, spec.case_sensitive)
    if spec.kind == "regex":
        return regex(value, spec.pattern or "")
    if spec.kind == "numeric":
        return numeric(value, expected, spec.tolerance)
    if spec.kind == "json_schema":
        schema = spec.schema if spec.schema is not None else state_schema
        return json_schema(value, schema) if schema is not None else None
    return None


def score_item(specs: list[ScorerSpec], item: Item, output: Any, text: str | None,
               state_schema: dict[str, Any] | None = None, judge_score: float | None = None) -> ItemScore:
    """Every scorer on one completed item, and their weighted mean; the judge's grade is given."""
    scores = {spec.label: judge_score if spec.kind == "judge" else score_one(spec, item, output, text, state_schema)
              for spec in specs}
    return ItemScore(scores, combine(specs, scores))


def combine(specs: list[ScorerSpec], scores: dict[str, float | None]) -> float | None:
    """The weighted mean of the scorers that applied (None when none did)."""
    weighted = [(spec.weight, scores.get(spec.label)) for spec in specs]
    applied = [(w, s) for w, s in weighted if s is not None and w > 0]
    total = sum(w for w, _ in applied)
    return sum(w * s for w, s in applied) / total if total else None


# --- the judge -----------------------------------------------------------------------------------

JUDGE_PROMPT = """Input: {{ input }}
{% if reference %}A good answer: {{ reference }}
{% endif %}Answer: {{ answer }}
Criteria: {{ rubric }}
On a scale of 0 (bad) to 10 (perfect), how good is this answer?"""
# The grade is asked as JSON: a provider that constrains its output to a schema (llama.cpp, OpenAI)
# then always answers with a number; the number is still parsed from the text, so any answer works.
JUDGE_SCHEMA: dict[str, Any] = {"type": "object", "additionalProperties": False, "required": ["score"],
                                "properties": {"score": {"type": "integer", "minimum": 0, "maximum": 10}}}


def judge_variables(item: Item, answer: Any, rubric: str) -> dict[str, Any]:
    """The judge prompt's variables (rendered by the LLM step, in its sandbox)."""
    # An expected string is a model answer; an expected list or object is for the other scorers.
    reference = item.reference if item.reference is not None else (
        item.expected if isinstance(item.expected, str) else None)
    return {"rubric": item.rubric or rubric, "input": as_text(item.input), "reference": reference,
            "answer": as_text(answer)}


def parse_judge_answer(text: str) -> float:
    """The judge's grade, 0-10, as a score bounded to [0, 1]. Raises JudgeError if it holds none."""
    found = NUMBER.search(text or "")
    if found is None:
        raise JudgeError(f"the judge's answer {text[:60]!r} holds no number from 0 to 10")
    return min(1.0, max(0.0, float(found.group()) / 10.0))

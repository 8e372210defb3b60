"""The eval dataset: JSONL, one JSON object per line (pure: text in, items and problems out).

    {"input": {...}, "expected": ..., "reference": "...", "rubric": "...", "id": "..."}

Only `input` is required. A line that is not JSON, not an object, or has no `input` is skipped
and reported with its line number; the other lines are used.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

KNOWN_FIELDS = frozenset({"input", "expected", "reference", "rubric", "id"})


@dataclass(frozen=True)
class Item:
    """One dataset entry. `has_expected` tells an expected `null` from no expected output."""

    id: str
    input: Any
    expected: Any = None
    has_expected: bool = False
    reference: str | None = None
    rubric: str | None = None
    line: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The entry as a dataset line holds it (what a kept run stores to be repeated)."""
        entry: dict[str, Any] = {"id": self.id, "input": self.input}
        if self.has_expected:
            entry["expected"] = self.expected
        if self.reference is not None:
            entry["reference"] = self.reference
        if self.rubric is not None:
            entry["rubric"] = self.rubric
        return entry


def dataset_sha256(text: str) -> str:
    """The dataset's identity in a kept run: two runs on the same bytes compare like with like."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse_dataset(text: str, source: str = "dataset") -> tuple[list[Item], list[str]]:
    """The items of a JSONL text and one problem line per line skipped. Blank lines are ignored.

    An item without an `id` is named by its line number; a repeated id is a problem (skipped)."""
    items: list[Item] = []
    problems: list[str] = []
    seen: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        item, problem = _parse_line(line, number, source)
        if problem is None and item is not None and item.id in seen:
            problem = f"{source}:{number}: the id {item.id!r} is used by an earlier line; line skipped"
        if problem is not None or item is None:
            problems.append(problem or f"{source}:{number}: line skipped")
            continue
        seen.add(item.id)
        items.append(item)
    return items, problems


def _parse_line(line: str, number: int, source: str) -> tuple[Item | None, str | None]:
    try:
        entry = json.loads(line)
    except ValueError as exc:
        reason = getattr(exc, "msg", str(exc))
        return None, f"{source}:{number}: not JSON ({reason}); line skipped"
    if not isinstance(entry, dict) or "input" not in entry:
        return None, f"{source}:{number}: expected a JSON object with an \"input\" field; line skipped"
    unknown = sorted(set(entry) - KNOWN_FIELDS)
    if unknown:
        return None, (f"{source}:{number}: unknown field(s) {', '.join(unknown)} "
                      f"(known: {', '.join(sorted(KNOWN_FIELDS))}); line skipped")
    for key in ("reference", "rubric"):
        if key in entry and not isinstance(entry[key], str):
            return None, f"{source}:{number}: \"{key}\" must be a string; line skipped"
    raw_id = entry.get("id", f"line-{number}")
    if not isinstance(raw_id, (str, int)) or isinstance(raw_id, bool):
        return None, f"{source}:{number}: \"id\" must be a string or an integer; line skipped"
    return Item(id=str(raw_id), input=entry["input"], expected=entry.get("expected"),
                has_expected="expected" in entry, reference=entry.get("reference"),
                rubric=entry.get("rubric"), line=number), None

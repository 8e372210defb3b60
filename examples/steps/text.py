"""Text steps for the examples: small, typed, deterministic stand-ins for real GenAI steps.

Run them with `--steps examples.steps.text` from the repository root. Each is reachable as
`baton:fn:NAME`, as a Lambda ARN ending in `function:NAME`, or through
`arn:aws:states:::lambda:invoke` with `"FunctionName": "NAME"`.
"""

from __future__ import annotations

import re
from collections import Counter

from pydantic import BaseModel

from steps.sdk import StepFailed, step

STOP_WORDS = frozenset({"a", "an", "and", "are", "as", "for", "in", "is", "it", "of", "on", "the", "to", "with"})


class Document(BaseModel):
    text: str


class Normalised(BaseModel):
    text: str
    characters: int


class WordCount(BaseModel):
    words: int
    unique_words: int


class Keywords(BaseModel):
    keywords: list[str]


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


@step("normalise")
async def normalise(document: Document) -> Normalised:
    """Collapse runs of whitespace; an empty document is a `Text.Empty` task failure."""
    text = " ".join(document.text.split())
    if not text:
        raise StepFailed("Text.Empty", "the document has no text")
    return Normalised(text=text, characters=len(text))


@step("word_count")
async def word_count(document: Document) -> WordCount:
    """Count words and distinct words (case-insensitive); empty text fails with `Text.Empty`."""
    words = _words(document.text)
    if not words:
        raise StepFailed("Text.Empty", "nothing to count")
    return WordCount(words=len(words), unique_words=len(set(words)))


@step("keywords")
async def keywords(document: Document) -> Keywords:
    """The three most frequent non-stop-words, most frequent first (ties: first seen first)."""
    counts = Counter(w for w in _words(document.text) if w not in STOP_WORDS)
    return Keywords(keywords=[w for w, _ in counts.most_common(3)])

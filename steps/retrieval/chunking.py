"""Split documents into passages to embed (pure: no I/O).

A passage never crosses a Markdown section: a document is cut at its headings first, so a passage
is about one thing. Within a section, paragraphs (blank-line separated) are packed into passages of
at most `max_chars` characters; a longer paragraph is cut between sentences, and a longer sentence
between words. Each passage keeps the path of headings above it as its `title` ("Home policy >
Water damage"), which is embedded with the passage (a paragraph rarely repeats what its heading
says) and returned with it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})
TEXT_SUFFIXES = frozenset({".txt"}) | MARKDOWN_SUFFIXES

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")


@dataclass(frozen=True)
class Passage:
    """One piece of a document: its text, the headings above it, where it came from."""

    text: str
    title: str
    source: str  # the document's path, relative to the folder the knowledge base was built from
    position: int  # 0, 1, ... within the document

    @property
    def embedded_text(self) -> str:
        """What is embedded: the heading path, then the text."""
        return f"{self.title}\n\n{self.text}" if self.title else self.text


def split_document(text: str, source: str, *, max_chars: int = 1000, markdown: bool | None = None) -> list[Passage]:
    """The passages of one document. `markdown` defaults to "source ends in .md/.markdown"."""
    if max_chars < 20:
        raise ValueError("max_chars must be at least 20")
    if markdown is None:
        markdown = any(source.lower().endswith(suffix) for suffix in MARKDOWN_SUFFIXES)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    fallback = _title_from_source(source)
    passages: list[Passage] = []
    for headings, body in _sections(text, markdown):
        title = " > ".join(headings) if headings else fallback
        for piece in _pack(_paragraphs(body), max_chars):
            passages.append(Passage(piece, title, source, len(passages)))
    return passages


def _sections(text: str, markdown: bool) -> Iterator[tuple[list[str], str]]:
    """(heading path, body) for each section; the text before the first heading has no path."""
    if not markdown:
        yield [], text
        return
    path: list[tuple[int, str]] = []
    body: list[str] = []
    fenced = False
    for line in text.split("\n"):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        match = None if fenced else _HEADING.match(line)
        if match is None:
            body.append(line)
            continue
        yield [name for _, name in path], "\n".join(body)
        level = len(match.group(1))
        path = [(lvl, name) for lvl, name in path if lvl < level] + [(level, match.group(2))]
        body = []
    yield [name for _, name in path], "\n".join(body)


def _paragraphs(body: str) -> list[str]:
    return [" ".join(p.split()) if not _is_list(p) else p.strip() for p in _PARAGRAPH_BREAK.split(body) if p.strip()]


def _is_list(paragraph: str) -> bool:
    """Lists and tables keep their line breaks (they carry meaning); prose is reflowed."""
    lines = [line.strip() for line in paragraph.strip().split("\n")]
    return len(lines) > 1 and all(re.match(r"^([-*+|]|\d+[.)])\s?", line) for line in lines)


def _pack(paragraphs: list[str], max_chars: int) -> list[str]:
    """Greedy packing of paragraphs (then sentences, then words) into pieces of <= max_chars."""
    pieces: list[str] = []
    current = ""
    for unit in _units(paragraphs, max_chars):
        joined = f"{current}\n\n{unit}" if current else unit
        if len(joined) <= max_chars:
            current = joined
        else:
            pieces.append(current)
            current = unit
    if current:
        pieces.append(current)
    return pieces


def _units(paragraphs: list[str], max_chars: int) -> Iterator[str]:
    for paragraph in paragraphs:
        if len(paragraph) <= max_chars:
            yield paragraph
            continue
        sentence_group = ""
        for sentence in _SENTENCE_END.split(paragraph):
            for part in _cut_words(sentence, max_chars):
                joined = f"{sentence_group} {part}" if sentence_group else part
                if len(joined) <= max_chars:
                    sentence_group = joined
                else:
                    yield sentence_group
                    sentence_group = part
        if sentence_group:
            yield sentence_group


def _cut_words(sentence: str, max_chars: int) -> Iterator[str]:
    if len(sentence) <= max_chars:
        yield sentence
        return
    current = ""
    for word in sentence.split():
        while len(word) > max_chars:  # one enormous "word" (a URL, base64): cut it hard
            if current:
                yield current
                current = ""
            yield word[:max_chars]
            word = word[max_chars:]
        joined = f"{current} {word}" if current else word
        if len(joined) <= max_chars:
            current = joined
        else:
            yield current
            current = word
    if current:
        yield current


def _title_from_source(source: str) -> str:
    """"policies/home-insurance.md" -> "home insurance": a title for a document without headings."""
    stem = source.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return " ".join(stem.replace("_", " ").replace("-", " ").split())

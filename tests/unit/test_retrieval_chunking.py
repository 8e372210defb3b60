"""The passage splitter: sections first, then paragraphs, sentences and words, never over the limit."""

from __future__ import annotations

from steps.retrieval.chunking import split_document

DOC = """# Home policy

Intro paragraph about the policy.

## Water damage

A burst pipe is covered.

Slow leaks are not covered.

## Theft
### Bicycles

Locked bicycles are covered up to 800 EUR.
"""


def test_sections_keep_their_heading_path() -> None:
    passages = split_document(DOC, "home.md")
    assert [(p.title, p.text) for p in passages] == [
        ("Home policy", "Intro paragraph about the policy."),
        ("Home policy > Water damage", "A burst pipe is covered.\n\nSlow leaks are not covered."),
        ("Home policy > Theft > Bicycles", "Locked bicycles are covered up to 800 EUR."),
    ]
    assert [p.position for p in passages] == [0, 1, 2]
    assert all(p.source == "home.md" for p in passages)
    assert passages[1].embedded_text.startswith("Home policy > Water damage\n\nA burst pipe")


def test_plain_text_uses_the_file_name_as_title_and_ignores_hashes() -> None:
    passages = split_document("# not a heading in a .txt\n\nSecond paragraph.", "pets/pet-insurance.txt")
    assert {p.title for p in passages} == {"pet insurance"}
    assert "# not a heading" in passages[0].text


def test_long_text_is_cut_between_sentences_then_words_and_never_exceeds_the_limit() -> None:
    sentence = "The insurer pays for sudden and accidental damage to the building. "
    long_paragraph = sentence * 30
    giant_word = "x" * 250
    passages = split_document(f"{long_paragraph}\n\n{giant_word}", "long.txt", max_chars=200)
    assert all(len(p.text) <= 200 for p in passages)
    assert len(passages) > 10
    rebuilt = " ".join(p.text for p in passages).split()
    assert rebuilt[:11] == sentence.split()
    assert "".join(w for w in rebuilt if set(w) == {"x"}) == giant_word


def test_headings_inside_code_fences_are_text_and_lists_keep_their_lines() -> None:
    text = "# Doc\n\n```\n# comment\n```\n\n- one\n- two\n"
    passages = split_document(text, "d.md")
    assert len(passages) == 1 and passages[0].title == "Doc"
    assert "# comment" in passages[0].text and "- one\n- two" in passages[0].text


def test_empty_documents_have_no_passages() -> None:
    assert split_document("\n\n  \n", "empty.md") == []
    assert split_document("# Only a heading\n", "h.md") == []

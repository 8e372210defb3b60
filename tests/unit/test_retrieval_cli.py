"""`baton kb`: one-line errors, and an empty listing (the real build and search run in
tests/integration/test_retrieval_service.py against the offline embeddings server)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from orchestrator.cli import main


def _invoke(*args: str) -> tuple[int, list[str]]:
    result = CliRunner().invoke(main, ["kb", *args])
    assert "Traceback" not in result.output
    return result.exit_code, result.output.strip().splitlines()


def test_unreachable_embeddings_api_is_one_line(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nSome text.")
    code, lines = _invoke("add", str(docs), "--kb-dir", str(tmp_path / "kb"), "--embeddings-url", "http://127.0.0.1:1/v1")
    assert code == 2 and lines[-1].startswith("error: cannot reach the embeddings API at http://127.0.0.1:1/v1")
    assert not (tmp_path / "kb" / "docs").exists()


def test_missing_things_are_one_line(tmp_path: Path) -> None:
    code, lines = _invoke("add", str(tmp_path / "nope"), "--kb-dir", str(tmp_path / "kb"))
    assert code == 2 and lines == [f"error: {tmp_path / 'nope'} is not a folder"]
    code, lines = _invoke("search", "insurance", "q", "--kb-dir", str(tmp_path / "kb"))
    assert code == 2 and len(lines) == 1 and "no knowledge base 'insurance'" in lines[0]
    code, lines = _invoke("list", "--kb-dir", str(tmp_path / "kb"))
    assert code == 0 and lines[0].startswith("no knowledge bases in")

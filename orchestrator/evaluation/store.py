"""Kept eval runs: `<state dir>/evals/<run id>/` ($BATON_STATE_DIR, else `.baton`), so two runs
can be compared and one repeated on the same inputs:

    config.json     the resolved configuration (variants, scorers, judge, prices, concurrency, ...)
    dataset.jsonl   the dataset's exact bytes (sha256 in summary.json); `rerun` reads it from here
    definition.json the definition as it was run
    records.jsonl   one record per input x variant: output, tokens, latency, score, error
    records.csv     the same, for a spreadsheet
    summary.json    per-variant figures, the problems met, the dataset's hash
    summary.csv     per-variant figures
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator.evaluation.errors import RunNotFound
from orchestrator.evaluation.report import ItemRecord, to_csv


def evals_root() -> Path:
    return Path(os.environ.get("BATON_STATE_DIR") or ".baton") / "evals"


def new_run_id() -> str:
    """Sortable by time, unique enough for one person's runs: 20261204-190501-3fa2."""
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def save_run(run_id: str, summary: dict[str, Any], item_records: list[ItemRecord], dataset_text: str,
             definition: Any = None) -> Path:
    """Write the run's files (see the module docstring); return its folder. `summary` is
    `EvalReport.as_dict()`: its `config` and `summaries` go to their own files too."""
    folder = evals_root() / run_id
    folder.mkdir(parents=True, exist_ok=False)
    records = [r.as_dict() for r in item_records]
    _write(folder / "config.json", json.dumps(summary["config"], indent=2, ensure_ascii=False))
    _write(folder / "dataset.jsonl", dataset_text)
    if definition is not None:
        _write(folder / "definition.json", json.dumps(definition, indent=2, ensure_ascii=False))
    _write(folder / "records.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    _write(folder / "records.csv", to_csv(records))
    _write(folder / "summary.json", json.dumps(summary, indent=2, ensure_ascii=False))
    _write(folder / "summary.csv", to_csv(summary["summaries"]))
    return folder


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


@dataclass
class StoredRun:
    """A kept run read back."""

    run_id: str
    folder: Path
    config: dict[str, Any]
    summary: dict[str, Any]

    def records(self) -> list[ItemRecord]:
        lines = (self.folder / "records.jsonl").read_text(encoding="utf-8").splitlines()
        return [ItemRecord.from_dict(json.loads(line)) for line in lines if line.strip()]


def find_run(ref: str) -> StoredRun:
    """A run by its id (or a unique prefix of it), or by its folder's path."""
    folder = Path(ref)
    if not (folder / "summary.json").is_file():
        root = evals_root()
        matches = sorted(p for p in root.glob(f"{ref}*") if (p / "summary.json").is_file()) if root.is_dir() else []
        if len(matches) != 1:
            known = ", ".join(p.name for p in list_runs()[-5:]) or "none"
            raise RunNotFound(f"{'several runs start with' if matches else 'no eval run'} {ref!r} under {root} "
                              f"(latest: {known}; `baton eval list` lists them)")
        folder = matches[0]
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunNotFound(f"{folder}: not a readable eval run ({exc})") from None
    return StoredRun(run_id=folder.name, folder=folder, config=config, summary=summary)


def list_runs() -> list[Path]:
    root = evals_root()
    return sorted(p for p in root.iterdir() if (p / "summary.json").is_file()) if root.is_dir() else []

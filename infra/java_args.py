"""Keep a JVM's arguments out of the process list: the main class and its arguments in an @argfile.

Any user on the machine can read every process's command line (``ps``, ``/proc/<pid>/cmdline``),
so a secret given to one of Kafka's tools as an argument (``kafka-storage format --add-scram
...password=...``) is public while the tool runs. The java launcher (JDK 9+) expands ``@file``
arguments, but only up to the main class: an ``@file`` after it reaches ``main`` as is. So the main
class goes into the file together with its arguments; the command line shows ``java [options]
@/path/to/file`` and nothing else. The file is created mode 0600 (only its owner can read it,
like the secrets it holds) and removed as soon as the tool has exited.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

# Not written to /tmp/hsperfdata_<user>/<pid>: that file holds the command as the JVM saw it
# (sun.rt.javaCommand, the argfile expanded), readable by the same user through jcmd/jps.
NO_PERF_DATA = "-XX:-UsePerfData"


def quote(argument: str) -> str:
    """One argument as the java launcher's argfile syntax reads it: double-quoted, with backslash
    and quote escaped (inside quotes a backslash escapes the next character)."""
    if any(char in argument for char in "\n\r\0"):
        raise ValueError("an argfile argument cannot hold a line break or NUL")
    return '"' + argument.replace("\\", "\\\\").replace('"', '\\"') + '"'


@contextmanager
def hidden_arguments(command: Sequence[str], main_class: str, folder: Path) -> Iterator[list[str]]:
    """``command`` (``java [options] MAIN ARGS...``) with ``MAIN ARGS...`` moved into an owner-only
    argfile in ``folder``; the file is removed when the block ends."""
    first = list(command).index(main_class)
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".java-args-", dir=folder)  # mode 0600
    path = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("".join(quote(argument) + "\n" for argument in command[first:]))
        yield [*command[:first], f"@{path}"]
    finally:
        path.unlink(missing_ok=True)

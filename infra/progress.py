"""Progress bars for the long waits of a first run (the Kafka jars, the model, the benchmarks).

tqdm draws them on stderr, so a command's stdout (e.g. `baton kafka up`'s address) stays clean;
they are shown only when stdout and stderr are both terminals: piped into a file, a CI log or
`$(...)`, a command prints no bar at all.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from tqdm import tqdm

_SIZE = re.compile(r"([\d.]+)\s*(B|kB|KB|MB|GB)\b")
_UNITS = {"B": 1, "kB": 1000, "KB": 1024, "MB": 1000**2, "GB": 1000**3}


def shown() -> bool:
    """Whether a bar would be drawn: both stdout and stderr are terminals."""
    return sys.stdout.isatty() and sys.stderr.isatty()


def bar(description: str, *, total: float | None = None, unit: str = "it", enabled: bool = True,
        **options: Any) -> tqdm[Any]:
    """A tqdm bar on stderr; disabled (every call a no-op) unless `enabled` and :func:`shown`."""
    scaled = {"unit_scale": True, "unit_divisor": 1024} if unit == "B" else {}
    return tqdm(total=total, desc=description, unit=unit, file=sys.stderr, disable=not (enabled and shown()),
                leave=False, dynamic_ncols=True, **{**scaled, **options})


def size_in_bytes(text: str) -> int:
    """The first size such as "12 kB" or "3.4 MB" in `text` (as Maven and pip print them), in bytes; 0 if none."""
    found = _SIZE.search(text)
    return int(float(found.group(1)) * _UNITS[found.group(2)]) if found else 0

"""RFC 3339 timestamps as ASL uses them (Wait Timestamp(Path), the context object, history)."""

from __future__ import annotations

import re
from datetime import datetime, timezone

# ISO-8601 extended offset date-time: uppercase T, and an offset (Z or +hh:mm) is required.
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$"
)


def parse_timestamp(value: object) -> datetime:
    """Parse an RFC 3339 date-time with offset into an aware datetime; ValueError if it is not one."""
    if not isinstance(value, str):
        raise TypeError("a timestamp must be a string")
    m = _RFC3339.match(value)
    if not m:
        raise ValueError(f"not an RFC 3339 timestamp: {value!r}")
    fraction = (m.group(7) or ".0")[1:7].ljust(6, "0")
    offset = m.group(8).upper()
    text = f"{m.group(1)}-{m.group(2)}-{m.group(3)}T{m.group(4)}:{m.group(5)}:{m.group(6)}.{fraction}"
    text += "+00:00" if offset == "Z" else offset
    return datetime.fromisoformat(text)


def format_timestamp(moment: datetime) -> str:
    """Millisecond-precision UTC, as Step Functions prints times: 2024-06-01T12:00:00.123Z."""
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def utc(now: datetime | None = None) -> datetime:
    """An aware UTC datetime (helper for callers building an Environment)."""
    return (now or datetime.now(timezone.utc)).astimezone(timezone.utc)

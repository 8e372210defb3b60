"""The quotas checked where data enters Baton: `baton start`, `baton deploy`, `baton review` and the API.

`orchestrator.settings.Quotas` holds the numbers (docs/limits.md). This module measures data the
way the decider does (compact JSON, UTF-8 bytes: `orchestrator.asl.dataflow.to_json`), so what an
entry point accepts is what an execution can carry, and refuses the rest with `QuotaExceeded`:
one line naming the quota, its environment variable and what to do instead. The CLI turns it into
a non-zero exit (`orchestrator.cli.control.run`), the API into 413 (`orchestrator.api.errors`).
"""

from __future__ import annotations

import re
from typing import Any

from orchestrator.asl.dataflow import to_json
from orchestrator.settings import Quotas
from schemas.errors import BatonError

# Room for the envelope of a start record around its definition and input (ids, names, times).
_ENVELOPE_BYTES = 64 * 1024

# A JSON string, escapes included; an unterminated one runs to the end of the text, so the scan
# below stays linear whatever the input (no retry from every quote of a broken document).
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+(?:"|\Z)', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPENING = frozenset(b"[{")


class QuotaExceeded(BatonError, ValueError):
    """Data over one of the quotas; `str()` is one line with the size, the limit and the fix."""

    def __init__(self, code: str, message: str, *, size: int | None = None, limit: int | None = None,
                 status: int = 413) -> None:
        super().__init__(message)
        self.code, self.size, self.limit, self.status = code, size, limit, status


def payload_bytes(value: Any) -> int:
    """The size the decider gives a payload: its compact JSON in UTF-8."""
    return len(to_json(value).encode())


def check_payload(value: Any, quotas: Quotas, what: str = "the execution input") -> None:
    """Refuse a payload (an execution input, a task's output) over `Quotas.max_payload_bytes`."""
    size = payload_bytes(value)
    if size > quotas.max_payload_bytes:
        raise QuotaExceeded(
            "PayloadTooLarge",
            f"{what} is {size:,} bytes (compact JSON), over the payload quota of {quotas.max_payload_bytes:,} "
            "bytes (BATON_MAX_PAYLOAD_BYTES; AWS: 256 KiB): pass a reference to the data (a URL, a key, a "
            "file path) instead of the data itself",
            size=size, limit=quotas.max_payload_bytes)


def check_definition(definition: Any, quotas: Quotas) -> None:
    """Refuse a definition (a parsed JSON/YAML document) over `Quotas.max_definition_bytes`."""
    size = payload_bytes(definition)
    if size > quotas.max_definition_bytes:
        raise QuotaExceeded(
            "DefinitionTooLarge",
            f"the definition is {size:,} bytes (compact JSON), over the definition quota of "
            f"{quotas.max_definition_bytes:,} bytes (BATON_MAX_DEFINITION_BYTES; AWS: 1 MB): split it into "
            "state machines that start each other, or move large Result/Parameters values into the input",
            size=size, limit=quotas.max_definition_bytes)


def json_depth_exceeds(text: bytes, limit: int) -> bool:
    """Whether JSON text nests arrays and objects deeper than `limit`, found without parsing it
    (a recursive parser would fail on such text with a RecursionError, or worse). Brackets inside
    strings do not count; for text that is not JSON the answer is a guess, and the parser's own
    error follows."""
    depth = 0
    for byte in _STRING.sub(b"", text).translate(None, _NOT_BRACKETS):
        if byte in _OPENING:
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def check_json_depth(text: bytes | str, quotas: Quotas, what: str = "the JSON") -> None:
    """Refuse JSON text nested deeper than `Quotas.max_json_depth` (a 400, not a 413)."""
    data = text.encode() if isinstance(text, str) else text
    if json_depth_exceeds(data, quotas.max_json_depth):
        raise QuotaExceeded(
            "JsonTooDeep",
            f"{what} nests arrays/objects more than {quotas.max_json_depth} levels deep (BATON_MAX_JSON_DEPTH): "
            "flatten it", limit=quotas.max_json_depth, status=400)


def start_producer_options(quotas: Quotas) -> dict[str, Any]:
    """aiokafka producer options for the entry points' records (start, stop, redrive, decisions).

    A start may carry a definition and an input each at its quota, over aiokafka's default 1 MiB
    check of the uncompressed record; compressed (definitions are repetitive JSON) it is well
    under the broker's limit, which judges the compressed batch. What the broker still refuses
    comes back as MessageSizeTooLargeError, answered as 413 / one line (`kafka_errors`)."""
    return {
        "compression_type": "gzip",
        "max_request_size": max(1024 * 1024, quotas.max_definition_bytes + quotas.max_payload_bytes + _ENVELOPE_BYTES),
    }

"""Large payloads as references (the claim check): the reference format, and the pure walks that
replace values over a threshold with references and put the values back.

A value whose compact JSON is over the threshold is stored in an object store (`kafka_io.payloads`
does the I/O) under a content address and travels through Kafka as a reference:

    {"$baton.payload": 1, "key": "<scope>/<sha256>", "sha256": "<hex>", "bytes": 20971522}

`scope` is a hash of the execution id, so every execution's objects share one prefix (retention
removes it whole) and a reference names only its own execution's objects: one copied into another
execution's input is refused, not read. The key is the hash of the bytes, so a retried Kafka
transaction writes the same reference to the same object and nothing doubles. Nothing here does
I/O: the walks take `put` and `get` callables, so orchestrator and step services share one format.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from pydantic_core import from_json, to_json

from schemas.errors import BatonError

REF_FIELD = "$baton.payload"
REF_VERSION = 1
# The bytes a record must contain to hold a reference at all: readers scan for them before
# walking a value, so a record without references costs one substring search.
REF_MARKER = b'"$baton.payload"'
_REF_KEYS = frozenset({REF_FIELD, "key", "sha256", "bytes"})

PAYLOAD_MISSING = "Baton.Payload.Missing"
PAYLOAD_CORRUPT = "Baton.Payload.Corrupt"
PAYLOAD_UNAVAILABLE = "Baton.Payload.Unavailable"  # the store did not answer (retry may help)
DATA_LIMIT_EXCEEDED = "States.DataLimitExceeded"  # ASL's name, as the decider raises it


class PayloadError(BatonError):
    """A reference that cannot be resolved: its object is missing, corrupt or not this execution's.
    `error` is the ASL error name the task or execution fails with (Catch can route it)."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(message)
        self.error = error


def scope_of(execution_id: str) -> str:
    """The key prefix of an execution's objects (a hash: execution ids are ARNs, not paths)."""
    return hashlib.sha256(execution_id.encode()).hexdigest()[:32]


def reference(scope: str, data: bytes) -> dict[str, Any]:
    """The reference to `data` (a value's compact JSON) stored under `scope`."""
    digest = hashlib.sha256(data).hexdigest()
    return {REF_FIELD: REF_VERSION, "key": f"{scope}/{digest}", "sha256": digest, "bytes": len(data)}


def is_reference(value: Any) -> bool:
    return (isinstance(value, dict) and value.get(REF_FIELD) == REF_VERSION and value.keys() == _REF_KEYS
            and isinstance(value.get("key"), str) and isinstance(value.get("sha256"), str))


def _json_size(value: Any) -> int:
    return len(to_json(value))


def offload(value: Any, *, scope: str, threshold: int, put: Callable[[str, bytes], None],
            keep_root: bool = False) -> Any:
    """`value` with every part whose compact JSON is over `threshold` bytes replaced by a
    reference, after `put(key, json_bytes)` has stored it. Bottom-up: a part's own large parts
    become references first, so a document with one large field keeps its other fields inline
    (and readable in the history); the part itself is offloaded only if it is still over.
    `keep_root`: never replace `value` itself (a record's envelope stays a record)."""

    def walk(node: Any, root: bool) -> tuple[Any, int]:
        if isinstance(node, dict):
            items: dict[str, Any] = {}
            size = 1 + max(len(node), 1)  # braces and separators
            for name, child in node.items():
                items[name], child_size = walk(child, False)
                size += child_size + _json_size(name) + 1
            node = items
        elif isinstance(node, list):
            kept: list[Any] = []
            size = 1 + max(len(node), 1)
            for child in node:
                new, child_size = walk(child, False)
                kept.append(new)
                size += child_size
            node = kept
        else:
            data = to_json(node)  # a leaf's JSON, measured and (if over) stored: serialised once
            if len(data) <= threshold or root:
                return node, len(data)
            ref = reference(scope, data)
            put(ref["key"], data)
            return ref, _json_size(ref)
        if size <= threshold or root:
            return node, size
        data = to_json(node)
        ref = reference(scope, data)
        put(ref["key"], data)
        return ref, _json_size(ref)

    return walk(value, keep_root)[0]


def hydrate(value: Any, *, scope: str, get: Callable[[str], bytes | None], limit: int) -> Any:
    """`value` with every reference replaced by the value it names (references inside a stored
    value too). Raises PayloadError when an object is missing, does not match its hash or is not
    this execution's (`scope`), and when the values resolved add up past `limit` bytes."""
    total = 0

    def resolve(ref: dict[str, Any]) -> Any:
        nonlocal total
        key = ref["key"]
        if key != f"{scope}/{ref['sha256']}":
            raise PayloadError(PAYLOAD_MISSING, f"payload reference {key} does not belong to this execution")
        data = get(key)
        if data is None:
            raise PayloadError(PAYLOAD_MISSING, f"payload {key} ({ref.get('bytes')} bytes) is missing from the "
                               "payload store (removed by retention, or another store is configured?)")
        if hashlib.sha256(data).hexdigest() != ref["sha256"]:
            raise PayloadError(PAYLOAD_CORRUPT, f"payload {key} does not match its sha256 ({len(data)} bytes read)")
        total += len(data)
        if total > limit:
            raise PayloadError(DATA_LIMIT_EXCEEDED, f"the payloads referenced add up to {total} bytes, over "
                               f"the limit of {limit} bytes (BATON_MAX_OFFLOADED_PAYLOAD)")
        return walk(from_json(data))

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if is_reference(node):
                return resolve(node)
            return {name: walk(child) for name, child in node.items()}
        if isinstance(node, list):
            return [walk(child) for child in node]
        return node

    return walk(value)


def contains_reference(value: Any) -> bool:
    """Whether a decoded value holds a reference anywhere (stops at the first one found)."""
    if isinstance(value, dict):
        return is_reference(value) or any(contains_reference(child) for child in value.values())
    if isinstance(value, list):
        return any(contains_reference(child) for child in value)
    return False


def may_hold_references(data: bytes | str | None) -> bool:
    """Whether a record's bytes (or JSON text) can hold a reference: the cheap test before a walk."""
    if data is None:
        return False
    if isinstance(data, bytes):
        return REF_MARKER in data
    return REF_MARKER.decode() in data

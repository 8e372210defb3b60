"""The claim check's pure part (schemas.payloads) and its folder store (kafka_io.payloads)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic_core import to_json

from kafka_io.payloads import PayloadSettings, open_payload_store
from schemas.payloads import (
    PAYLOAD_CORRUPT,
    PAYLOAD_MISSING,
    PayloadError,
    contains_reference,
    hydrate,
    is_reference,
    may_hold_references,
    offload,
    scope_of,
)

SCOPE = scope_of("arn:baton:states:local:execution:m:e1")


def _memory() -> tuple[dict[str, bytes], object]:
    stored: dict[str, bytes] = {}
    return stored, stored.__setitem__


def test_small_values_are_untouched_and_nothing_is_stored() -> None:
    stored, put = _memory()
    value = {"a": [1, 2, {"b": "x" * 100}], "c": None}
    assert offload(value, scope=SCOPE, threshold=1024, put=put) == value  # type: ignore[arg-type]
    assert stored == {}
    assert not may_hold_references(to_json(value))


def test_only_the_large_part_is_offloaded_and_hydrates_back() -> None:
    stored, put = _memory()
    value = {"document": {"title": "t", "body": "y" * 5000}, "usage": {"tokens": 3}}
    out = offload(value, scope=SCOPE, threshold=1024, put=put)  # type: ignore[arg-type]
    assert out["usage"] == {"tokens": 3} and out["document"]["title"] == "t"
    ref = out["document"]["body"]
    assert is_reference(ref) and ref["key"].startswith(SCOPE + "/") and ref["bytes"] == 5002
    assert len(to_json(out)) < 1024 and may_hold_references(to_json(out))
    assert hydrate(out, scope=SCOPE, get=stored.get, limit=10**6) == value


def test_a_container_of_small_parts_over_the_threshold_is_offloaded_whole() -> None:
    stored, put = _memory()
    value = {"items": [f"item {i:04}" for i in range(500)]}
    out = offload(value, scope=SCOPE, threshold=1024, put=put)  # type: ignore[arg-type]
    assert is_reference(out["items"])
    assert hydrate(out, scope=SCOPE, get=stored.get, limit=10**6) == value
    # keep_root: a record's envelope is never replaced, however big
    root = offload(value["items"], scope=SCOPE, threshold=1024, put=put, keep_root=True)  # type: ignore[arg-type]
    assert isinstance(root, list) and len(root) == 500


def test_content_addressed_the_same_value_writes_the_same_reference() -> None:
    stored, put = _memory()
    first = offload({"x": "z" * 4000}, scope=SCOPE, threshold=1024, put=put)  # type: ignore[arg-type]
    again = offload({"x": "z" * 4000}, scope=SCOPE, threshold=1024, put=put)  # type: ignore[arg-type]
    assert first == again and len(stored) == 1


def test_missing_corrupt_foreign_and_over_the_limit_references_are_refused() -> None:
    stored, put = _memory()
    out = offload({"x": "z" * 4000}, scope=SCOPE, threshold=1024, put=put)  # type: ignore[arg-type]
    key = out["x"]["key"]
    with pytest.raises(PayloadError) as missing:
        hydrate(out, scope=SCOPE, get={}.get, limit=10**6)
    assert missing.value.error == PAYLOAD_MISSING and "missing" in str(missing.value)
    stored[key] = stored[key][:-2] + b'!"'
    with pytest.raises(PayloadError) as corrupt:
        hydrate(out, scope=SCOPE, get=stored.get, limit=10**6)
    assert corrupt.value.error == PAYLOAD_CORRUPT
    with pytest.raises(PayloadError) as foreign:
        hydrate(out, scope=scope_of("another execution"), get=stored.get, limit=10**6)
    assert foreign.value.error == PAYLOAD_MISSING and "does not belong" in str(foreign.value)
    fresh, put2 = _memory()
    ok = offload({"x": "z" * 4000}, scope=SCOPE, threshold=1024, put=put2)  # type: ignore[arg-type]
    with pytest.raises(PayloadError) as over:
        hydrate(ok, scope=SCOPE, get=fresh.get, limit=1000)
    assert over.value.error == "States.DataLimitExceeded"


def test_a_user_dict_that_looks_almost_like_a_reference_is_data() -> None:
    value = {"$baton.payload": 1, "key": "k", "sha256": "s", "bytes": 1, "extra": True}
    assert not is_reference(value)
    assert hydrate(value, scope=SCOPE, get={}.get, limit=10) == value


def test_folder_store_round_trip_limit_and_retention(tmp_path: Path) -> None:
    settings = PayloadSettings(payload_store=str(tmp_path / "payloads"), payload_offload_bytes=1024,
                               max_offloaded_payload=100_000)
    store = open_payload_store(settings)
    assert store is not None and open_payload_store(PayloadSettings(payload_store="")) is None
    execution = "arn:baton:states:local:execution:m:e2"
    value = {"answer": "a" * 50_000, "n": 1}
    out = store.offload(value, execution)
    path = tmp_path / "payloads" / out["answer"]["key"]
    assert json.loads(path.read_bytes()) == "a" * 50_000
    assert store.hydrate(out, execution) == value
    with pytest.raises(PayloadError) as over:
        store.offload({"answer": "a" * 200_000}, execution)
    assert over.value.error == "States.DataLimitExceeded"
    assert store.remove(execution) == 1 and not path.exists()
    with pytest.raises(PayloadError):
        store.hydrate(out, execution)


def test_contains_reference_finds_one_anywhere() -> None:
    stored, put = _memory()
    out = offload({"a": [1, {"b": "z" * 4000}]}, scope=SCOPE, threshold=1024, put=put)  # type: ignore[arg-type]
    assert contains_reference(out) and not contains_reference({"a": [1, {"b": "z"}]})

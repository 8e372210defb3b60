"""The claim check's cost per offloaded payload, against the payload store's own put and get.

For each size, the same bytes go (a) straight to the store's backend (`put` then `get`: what
any claim check must pay) and (b) through the claim check (`PayloadStore.offload` of a value
holding them, then `hydrate` of the reference: the walk, the compact JSON, the SHA-256 of the
content address, the check on the way back, the JSON parse). The ratio (b)/(a) is the claim
check's overhead. Also: what an execution's state costs in memory held hydrated (packed as the
orchestrator packs it: compact JSON, zlib level 1) against held as references, for a text
document and an LLM-like answer, which is the figure behind keeping states hydrated
(docs/payloads.md). No broker needed: the end-to-end figure is in tests/integration/test_payloads_e2e.py.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

from pydantic_core import to_json

from kafka_io.payloads import PayloadSettings, PayloadStore, open_payload_store

MIB = 1024 * 1024
WORDS = ("the report states that revenue grew while costs fell in every region except the north where "
         "new stores opened and hiring continued through the second half of the year").split()


def _text(size: int, seed: int) -> str:
    """Prose-like text (compresses about as a document or an LLM answer does, unlike "x" * n)."""
    rng = random.Random(seed)
    words = [rng.choice(WORDS) for _ in range(size // 5 + 1)]
    return " ".join(words)[:size]


def _timed(action: Any, repeat: int) -> float:
    """The median of `repeat` runs, in milliseconds."""
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        action()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def _one_size(store: PayloadStore, size: int, repeat: int) -> dict[str, Any]:
    backend = store.backend
    value = {"title": "t", "body": _text(size, size)}
    data = to_json(value["body"])
    counter = iter(range(10**9))

    def raw() -> None:
        key = f"raw/{len(data)}-{next(counter)}"
        backend.put(key, data)
        assert backend.get(key) is not None

    def claim_check() -> None:
        execution = f"arn:baton:states:local:execution:bench:{next(counter)}"  # a new object each time
        out = store.offload(value, execution)
        store._cache.clear()  # read back from the store, as another process would
        store._cached = 0
        assert store.hydrate(out, execution)["body"] == value["body"]

    raw_ms, claim_ms = _timed(raw, repeat), _timed(claim_check, repeat)
    return {"bytes": len(data), "store_put_get_ms": round(raw_ms, 2), "claim_check_ms": round(claim_ms, 2),
            "overhead_ms": round(claim_ms - raw_ms, 2), "ratio": round(claim_ms / raw_ms, 2),
            "overhead_ms_per_mib": round((claim_ms - raw_ms) / (len(data) / MIB), 2)}


def _memory(store: PayloadStore, size: int) -> dict[str, Any]:
    """Packed bytes of a state holding a document of `size` in two places (input and output),
    hydrated against with references."""
    text = _text(size, 7)
    state = {"execution_id": "e", "input": {"doc": text}, "output": {"doc": text, "n": 1}, "tasks": {}}
    hydrated = zlib.compress(to_json(state), 1)
    referenced = zlib.compress(to_json(store.offload(state, "e", keep_root=True)), 1)
    began = time.perf_counter()
    store.hydrate(store.offload(state, "e", keep_root=True), "e")
    return {"document_bytes": size, "packed_hydrated_bytes": len(hydrated), "packed_referenced_bytes": len(referenced),
            "hydrate_per_decision_ms": round((time.perf_counter() - began) * 1000, 1)}


def run(sizes_mib: tuple[float, ...] = (1, 5, 20), repeat: int = 5, settings: PayloadSettings | None = None,
        ) -> dict[str, Any]:
    """The figures for each size, on a folder store in a temporary folder unless `settings` names one."""
    with tempfile.TemporaryDirectory(prefix="baton-bench-payloads-") as folder:
        settings = settings or PayloadSettings(payload_store=str(Path(folder) / "payloads"))
        store = open_payload_store(settings)
        assert store is not None
        try:
            return {"store": store.where() if settings.payload_store.startswith("s3://") else "folder",
                    "sizes": [_one_size(store, int(mib * MIB), repeat) for mib in sizes_mib],
                    "memory": [_memory(store, int(mib * MIB)) for mib in (5, 20)]}
        finally:
            store.close()

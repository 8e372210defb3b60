"""Which embedded store holds the orchestrator's execution state: SQLite (stdlib, WAL), LMDB and
RocksDB (rocksdict), on the orchestrator's access pattern.

The orchestrator writes ~1 KiB snapshots keyed by execution id in batches (one write transaction
per Kafka transaction, ~500 executions), reads single executions by id (each event's execution),
and scans everything once when a store is rebuilt. Run: `python -m bench.state_stores [COUNT]`;
the figures are in docs/performance.md ("State store")."""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

BATCH = 500
VALUE_BYTES = 1024


class Store(Protocol):
    def put_batch(self, items: list[tuple[bytes, bytes]]) -> None: ...
    def get(self, key: bytes) -> bytes | None: ...
    def scan(self) -> Iterator[tuple[bytes, bytes]]: ...
    def close(self) -> None: ...


class SqliteStore:
    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path / "store.sqlite", isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA journal_size_limit=67108864")
        self.db.execute("CREATE TABLE kv (k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID")

    def put_batch(self, items: list[tuple[bytes, bytes]]) -> None:
        self.db.execute("BEGIN")
        self.db.executemany("INSERT OR REPLACE INTO kv VALUES (?, ?)", items)
        self.db.execute("COMMIT")

    def get(self, key: bytes) -> bytes | None:
        row = self.db.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def scan(self) -> Iterator[tuple[bytes, bytes]]:
        yield from self.db.execute("SELECT k, v FROM kv")

    def close(self) -> None:
        self.db.close()


class LmdbStore:
    def __init__(self, path: Path) -> None:
        import lmdb

        self.env = lmdb.open(str(path), map_size=8 << 30, sync=False, metasync=False)

    def put_batch(self, items: list[tuple[bytes, bytes]]) -> None:
        with self.env.begin(write=True) as txn:
            for key, value in items:
                txn.put(key, value)

    def get(self, key: bytes) -> bytes | None:
        with self.env.begin() as txn:
            value = txn.get(key)
        return None if value is None else bytes(value)

    def scan(self) -> Iterator[tuple[bytes, bytes]]:
        with self.env.begin() as txn:
            yield from txn.cursor()

    def close(self) -> None:
        self.env.close()


class RocksStore:
    def __init__(self, path: Path) -> None:
        from rocksdict import Rdict, WriteBatch

        self.db = Rdict(str(path / "rocks"))
        self.batch_type = WriteBatch

    def put_batch(self, items: list[tuple[bytes, bytes]]) -> None:
        batch = self.batch_type(raw_mode=False)
        for key, value in items:
            batch.put(key, value)
        self.db.write(batch)

    def get(self, key: bytes) -> bytes | None:
        value = self.db.get(key)
        return value if isinstance(value, bytes) else None

    def scan(self) -> Iterator[tuple[bytes, bytes]]:
        yield from self.db.items()

    def close(self) -> None:
        self.db.close()


def _disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def measure(name: str, factory: Callable[[Path], Store], count: int) -> dict[str, float]:
    """Seconds per phase for `count` executions of ~1 KiB each, and the bytes on disk."""
    rng = random.Random(7)
    keys = [f"arn:baton:execution:Soak:{i:09d}".encode() for i in range(count)]
    # Zlib'd JSON, as the orchestrator keeps: incompressible, and different for every execution.
    values = [os.urandom(VALUE_BYTES) for _ in range(1024)]
    folder = Path(tempfile.mkdtemp(prefix=f"baton-store-{name}-"))
    try:
        store = factory(folder)
        started = time.perf_counter()
        for first in range(0, count, BATCH):
            store.put_batch([(key, values[(first + i) % 1023]) for i, key in enumerate(keys[first:first + BATCH])])
        put = time.perf_counter() - started
        lookups = [rng.choice(keys) for _ in range(min(count, 50_000))]
        started = time.perf_counter()
        for key in lookups:
            assert store.get(key) is not None
        get = time.perf_counter() - started
        started = time.perf_counter()
        updates = [(key, values[i % 1021]) for i, key in enumerate(lookups)]
        for first in range(0, len(updates), BATCH):
            store.put_batch(updates[first:first + BATCH])
        update = time.perf_counter() - started
        started = time.perf_counter()
        scanned = sum(1 for _ in store.scan())
        scan = time.perf_counter() - started
        assert scanned == count
        store.close()
        return {"put_per_s": count / put, "get_us": get / len(lookups) * 1e6, "update_per_s": len(updates) / update,
                "scan_per_s": count / scan, "disk_mib": _disk_bytes(folder) / 2**20}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(count: int) -> None:
    candidates: list[tuple[str, Callable[[Path], Store]]] = [("sqlite", SqliteStore), ("lmdb", LmdbStore),
                                                             ("rocksdict", RocksStore)]
    print(f"{count:,} values of {VALUE_BYTES} B, write batches of {BATCH}")
    print(f"{'store':10} {'put/s':>10} {'get µs':>8} {'update/s':>10} {'scan/s':>10} {'disk MiB':>9}")
    for name, factory in candidates:
        try:
            figures = measure(name, factory, count)
        except ImportError as exc:
            print(f"{name:10} not installed ({exc})")
            continue
        print(f"{name:10} {figures['put_per_s']:>10,.0f} {figures['get_us']:>8.1f} {figures['update_per_s']:>10,.0f} "
              f"{figures['scan_per_s']:>10,.0f} {figures['disk_mib']:>9.0f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)

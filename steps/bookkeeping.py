"""A step service's bookkeeping, kept apart from its Kafka loop (steps/service.py): its metrics,
the offsets in flight and safe to commit per partition, and the bounded memory of finished tasks
that makes a duplicate command re-publish its result instead of running again."""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from dataclasses import dataclass

from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["StepMetrics"]


class StepMetrics:
    """The service's Prometheus metrics (FastStream's middleware adds per-message ones)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.commands = Counter("baton_step_commands", "Step commands received, by kind.",
                                ["service", "kind"], registry=registry)
        self.results = Counter(
            "baton_step_results",
            "Tasks finished, by outcome (succeeded, failed, handed_off, cancelled, duplicate).",
            ["service", "outcome"], registry=registry)
        self.duration = Histogram(
            "baton_step_duration_seconds", "Time from a command's start to its outcome.",
            ["service", "outcome"], registry=registry,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900))
        self.running = Gauge("baton_step_running", "Tasks running now.", ["service"], registry=registry)
        self.dead_letters = Counter("baton_dlq_messages", "Messages sent to the dead-letter topic.",
                                    ["source"], registry=registry)


class _Offsets:
    """Per partition: offsets in flight, and the next offset that is safe to commit.

    Records of a partition arrive in offset order, so every accepted offset below the oldest one
    still in flight is finished: that oldest offset is the commit point.
    """

    def __init__(self) -> None:
        self._in_flight: defaultdict[TopicPartition, set[int]] = defaultdict(set)
        self._next: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int] = {}

    def start(self, tp: TopicPartition, offset: int) -> None:
        self._in_flight[tp].add(offset)
        self._next[tp] = max(self._next.get(tp, 0), offset + 1)

    def finish(self, tp: TopicPartition, offset: int) -> None:
        self._in_flight[tp].discard(offset)

    def committable(self) -> dict[TopicPartition, int]:
        ready: dict[TopicPartition, int] = {}
        for tp, next_offset in self._next.items():
            flying = self._in_flight[tp]
            mark = min(flying) if flying else next_offset
            if mark > self._committed.get(tp, -1):
                ready[tp] = mark
        return ready

    def progress(self, tp: TopicPartition) -> tuple[int, list[tuple[int, int]]] | None:
        """The commit point of `tp` and the runs [start, end) of offsets finished after it (records
        taken out of order, e.g. by flow control, finish beyond the oldest one still in flight)."""
        if tp not in self._next:
            return None
        flying = sorted(self._in_flight[tp])
        if not flying:
            return self._next[tp], []
        ends = [*flying[1:], self._next[tp]]
        return flying[0], [(start + 1, end) for start, end in zip(flying, ends, strict=True) if end > start + 1]

    def committed(self, offsets: dict[TopicPartition, int]) -> None:
        self._committed.update(offsets)

    def forget(self, partitions: set[TopicPartition]) -> None:
        """A revoked partition's new owner starts from the committed offset; drop our view of it."""
        for tp in partitions:
            self._in_flight.pop(tp, None)
            self._next.pop(tp, None)
            self._committed.pop(tp, None)


FINISHED_RUNS_FORMAT = "finished-runs-1:"
MAX_COMMIT_METADATA = 4000  # the broker's offset.metadata.max.bytes is 4096 by default


def finished_runs_metadata(mark: int, runs: list[tuple[int, int]], limit: int = MAX_COMMIT_METADATA) -> str:
    """Runs of finished offsets after a commit point, as commit metadata (hex deltas from the
    mark). Runs that do not fit are left out: those records are only redelivered."""
    text = FINISHED_RUNS_FORMAT
    for start, end in runs:
        part = f"{start - mark:x}+{end - start:x},"
        if len(text) + len(part) > limit:
            break
        text += part
    return text


def parse_finished_runs(mark: int, metadata: str | None) -> list[tuple[int, int]]:
    """The runs `finished_runs_metadata` wrote ([] for any other metadata)."""
    if not metadata or not metadata.startswith(FINISHED_RUNS_FORMAT):
        return []
    runs = []
    for part in metadata[len(FINISHED_RUNS_FORMAT):].split(","):
        if part:
            delta, length = part.split("+")
            start = mark + int(delta, 16)
            runs.append((start, start + int(length, 16)))
    return runs


@dataclass(frozen=True)
class _Published:
    key: bytes
    value: bytes


class _Recent:
    """LRU of finished task ids -> the published result (None: nothing to re-publish).

    Bounded in entries and in bytes, since one result may be as large as the payload limit.
    """

    def __init__(self, max_items: int, max_bytes: int = 64 * 1024 * 1024) -> None:
        self._max_items = max_items
        self._max_bytes = max_bytes
        self._bytes = 0
        self._items: OrderedDict[str, _Published | None] = OrderedDict()

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._items

    def get(self, task_id: str) -> _Published | None:
        self._items.move_to_end(task_id)
        return self._items[task_id]

    def put(self, task_id: str, published: _Published | None) -> None:
        self._discard(task_id)
        self._items[task_id] = published
        self._bytes += len(published.value) if published else 0
        while len(self._items) > self._max_items or self._bytes > self._max_bytes:
            self._discard(next(iter(self._items)))

    def _discard(self, task_id: str) -> None:
        old = self._items.pop(task_id, None)
        self._bytes -= len(old.value) if old else 0

"""The seed's GenAI demos (examples/genai/), run against a live Baton stack on Kafka.

`baton demo` (or `baton dev --run-demo`) publishes a start for each workflow, prints the states
each enters as the history topic reports them, approves the travel plan's human review (with
`--auto-approve`, or asks on a terminal), streams the final itinerary's tokens as the model
writes them (what `baton stream` does), and checks that every execution SUCCEEDED.

The same :func:`run_demos` drives tests/e2e/test_genai_demos.py, so the demo and its test agree.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from kafka_io import KafkaSettings, new_consumer
from schemas.errors import BatonError

REPO_ROOT = Path(__file__).resolve().parent.parent
GENAI_DIR = REPO_ROOT / "examples" / "genai"
DEMOS: tuple[str, ...] = ("story", "travel", "diet", "insurance", "intent-api")
PROMPT_STORES = {"story": "story", "travel": "travel", "diet": "diet", "insurance": "insurance", "intent": "intent-api"}
SHOWN_STREAM = "travel"  # whose streamed answer is printed live (the final itinerary)
ORDERS_API_PORT = 8097
TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}
FIRST_ANSWER_SECONDS = 30.0  # an orchestrator records a started execution in about a second


def definition(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((GENAI_DIR / name / "definition.json").read_text(encoding="utf-8"))
    return loaded


def demo_input(name: str) -> Any:
    return json.loads((GENAI_DIR / name / "input.json").read_text(encoding="utf-8"))


def llm_config(servers: list[Any]) -> dict[str, Any]:
    """The local model routes (infra/local_model.py) plus one prompt store per demo."""
    from infra.local_model import llm_config as model_routes

    config = model_routes(servers)
    config["prompt_stores"] = {store: {"url": str(GENAI_DIR / folder / "prompts")}
                               for store, folder in PROMPT_STORES.items()}
    return config


def connections_config(api_port: int = ORDERS_API_PORT) -> dict[str, Any]:
    """The HTTP step's named connection for the orders API on `api_port` (as connections.yaml)."""
    import yaml

    config: dict[str, Any] = yaml.safe_load((GENAI_DIR / "intent-api" / "connections.yaml").read_text(encoding="utf-8"))
    config["connections"]["orders-api"]["endpoints"] = [f"http://127.0.0.1:{api_port}/orders/"]
    return config


class DemoError(BatonError):
    """The demos cannot run on this stack (one line, with the fix)."""


@dataclass
class DemoRun:
    """What one demo execution did, as the topics reported it."""

    demo: str
    execution_id: str
    states: list[str] = field(default_factory=list)  # states entered, in history order
    history: list[dict[str, Any]] = field(default_factory=list)
    chunks: list[tuple[int, str, bool, float]] = field(default_factory=list)  # seq, text, final, when
    status: str | None = None
    output: Any = None
    error: str | None = None
    cause: str | None = None
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    reviewed: bool = False

    @property
    def seconds(self) -> float:
        return (self.ended or time.monotonic()) - self.started


def _entered(event: dict[str, Any]) -> str | None:
    if not str(event.get("type", "")).endswith("StateEntered"):
        return None
    for key, value in event.items():
        if key.endswith("EventDetails") and isinstance(value, dict) and "name" in value:
            return str(value["name"])
    return None


async def _tail(settings: KafkaSettings, topic: str, ready: asyncio.Event, handle: Callable[[Any], None],
                stop: asyncio.Event) -> None:
    """Every committed record of `topic` published from now on, to `handle`, until `stop`."""
    from aiokafka.structs import TopicPartition

    consumer = new_consumer(settings)
    await consumer.start()
    try:
        if topic not in await consumer.topics():  # aiokafka would wait for it, warning for ever
            raise DemoError(f"topic {topic} does not exist at {settings.kafka_bootstrap}: `baton kafka topics` "
                            "creates Baton's topics (`baton dev` does too), or check the topic prefix")
        tps = [TopicPartition(topic, p) for p in range(settings.partitions)]  # as provisioned
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)
        ready.set()
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=300)
            for records in batch.values():
                for record in records:
                    handle(record)
    finally:
        await consumer.stop()


class _DemoWatch:
    """The demos' runs as the history, events and stream topics report them, printed as they go."""

    def __init__(self, names: tuple[str, ...], emit: Callable[[str], None], show_stream: bool) -> None:
        from schemas.executions import execution_id_for

        suffix = uuid.uuid4().hex[:6]
        self.runs: dict[str, DemoRun] = {}
        self.by_id: dict[str, DemoRun] = {}
        for name in names:
            execution_id = execution_id_for(name, f"{name}-{suffix}")  # each demo under its own name
            self.runs[name] = self.by_id[execution_id] = DemoRun(name, execution_id)
        self.width = max(len(n) for n in names)
        self.emit = emit
        self.show_stream = show_stream
        self.mid_line = False  # a live stream is in the middle of a line
        self.done = asyncio.Event()
        self.answered = asyncio.Event()  # the first history record of a run: an orchestrator took the starts

    def echo(self, run: DemoRun, message: str) -> None:
        """`emit` a line about `run`, on a fresh line after a live stream."""
        if self.mid_line:
            sys.stdout.write("\n")
            self.mid_line = False
        self.emit(f"  [{run.demo:<{self.width}}] {message}")

    def on_history(self, record: Any) -> None:
        from schemas.base import decode
        from schemas.executions import HistoryRecord

        run = self.by_id.get((record.key or b"").decode())
        if run is None:
            return
        for event in decode(HistoryRecord, record.value).events:
            run.history.append(event)
            self.answered.set()
            state = _entered(event)
            if state is not None:
                run.states.append(state)
                self.echo(run, f"{run.seconds:5.1f}s  -> {state}")

    def on_status(self, record: Any) -> None:
        from schemas.executions import ExecutionStatus, parse_execution_event

        run = self.by_id.get((record.key or b"").decode())
        if run is None:
            return
        status = parse_execution_event(record.value)
        if not isinstance(status, ExecutionStatus):
            return  # an ExecutionExpired: the retention of an earlier run with this id ended
        if status.status in TERMINAL and run.status is None:
            run.status, run.output, run.error, run.cause = status.status, status.output, status.error, status.cause
            run.ended = time.monotonic()
            self.echo(run, f"{run.seconds:5.1f}s  {status.status}"
                      + (f" ({status.error}: {status.cause})" if status.error else ""))
            if all(r.status for r in self.runs.values()):
                self.done.set()

    async def follow(self, settings: KafkaSettings, run: DemoRun, timeout: float) -> None:
        """Collect `run`'s streamed chunks; print them live for the shown demo."""
        from steps.llm.streaming import follow_stream

        live = self.show_stream and run.demo == SHOWN_STREAM
        try:
            async for chunk in follow_stream(settings, run.execution_id, since_seconds=60, idle_timeout=timeout):
                run.chunks.append((chunk.seq, chunk.text, chunk.final, time.monotonic()))
                if live and not run.chunks[:-1]:
                    self.echo(run, "streaming the itinerary:")
                if live and chunk.text:
                    sys.stdout.write(chunk.text)
                    sys.stdout.flush()
                    self.mid_line = not chunk.text.endswith("\n")
            if live and self.mid_line:
                sys.stdout.write("\n")
                self.mid_line = False
        except (TimeoutError, asyncio.CancelledError):
            pass

    async def review(self, settings: KafkaSettings, auto_approve: bool) -> None:
        """Decide each demo's pending review: approve it, or ask on the terminal."""
        from orchestrator.client.reviews import pending_reviews, post_decision
        from steps.review.decisions import approve, reject

        ids = set(self.by_id)
        while not self.done.is_set():
            for review in await pending_reviews(settings):
                run = self.by_id.get(review.execution_id)
                if run is None or review.execution_id not in ids:
                    continue
                ids.discard(review.execution_id)
                self.echo(run, f"review requested at {review.request.state_name}: {review.details.question}")
                self.emit(f"      {str(review.details.content)[:300]!s}")
                if auto_approve:
                    decision = approve(review.token, reviewer="baton-demo", comment="auto-approved by the demo")
                    self.echo(run, "auto-approved")
                else:
                    answer = await asyncio.to_thread(click.confirm, "      approve this plan?", default=True)
                    decision = (approve(review.token, reviewer="demo-user") if answer
                                else reject(review.token, cause="rejected in the demo"))
                await post_decision(settings, decision)
                run.reviewed = True
            await asyncio.sleep(1.0)

    async def start_all(self, settings: KafkaSettings, inputs: dict[str, Any] | None) -> None:
        from orchestrator.client import BatonClient

        # The demo's producer as before: idempotent, aiokafka's defaults otherwise.
        async with BatonClient(settings, producer_options={}) as client:
            for name, run in self.runs.items():
                await client.start(name, definition=definition(name), name=run.execution_id.rsplit(":", 1)[-1],
                                   input=(inputs or {}).get(name, demo_input(name)))
                run.started = time.monotonic()
                self.echo(run, f"started {run.execution_id}")

    async def wait_for_ends(self, timeout: float) -> None:
        """Until every run ended (or `timeout`); an orchestrator must answer within the first seconds."""
        try:
            await asyncio.wait_for(self.answered.wait(), min(timeout, FIRST_ANSWER_SECONDS))
            await asyncio.wait_for(self.done.wait(), timeout)
        except TimeoutError:
            for run in self.runs.values():
                if run.status is None:
                    run.status, run.error = "UNFINISHED", f"no end within {timeout:g} s"


async def _tails_ready(ready: list[asyncio.Event], tails: list[asyncio.Task[None]]) -> None:
    """Wait until both topic tails are positioned; raise a tail's error, or TimeoutError after 30 s."""
    waiting: asyncio.Future[Any] = asyncio.ensure_future(asyncio.gather(*(r.wait() for r in ready)))
    finished, _ = await asyncio.wait([waiting, *tails], timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if waiting in finished:
        return
    waiting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiting  # retrieved here, so asyncio does not report it at exit
    for tail in finished:
        tail.result()  # a tail that failed: raise its error
    raise TimeoutError("the history and events topics could not be read within 30 s")


async def run_demos(settings: KafkaSettings, names: tuple[str, ...] = DEMOS, *, auto_approve: bool = True,
                    inputs: dict[str, Any] | None = None, emit: Callable[[str], None] = click.echo,
                    show_stream: bool = True, timeout: float = 240.0) -> dict[str, DemoRun]:
    """Start each named demo at once and follow it to its end; return what each did."""
    topics = settings.topics
    watch = _DemoWatch(names, emit, show_stream)
    stop = asyncio.Event()
    ready = [asyncio.Event(), asyncio.Event()]
    tails = [asyncio.create_task(_tail(settings, topics.history, ready[0], watch.on_history, stop)),
             asyncio.create_task(_tail(settings, topics.events, ready[1], watch.on_status, stop))]
    try:
        await _tails_ready(ready, tails)
        streams = [asyncio.create_task(watch.follow(settings, run, timeout)) for name, run in watch.runs.items()
                   if any(s.get("Parameters", {}).get("Stream") for s in _all_states(definition(name)))]
        review_task = asyncio.create_task(watch.review(settings, auto_approve))
        await watch.start_all(settings, inputs)
        await watch.wait_for_ends(timeout)
        if streams and watch.answered.is_set():
            await asyncio.wait(streams, timeout=10)
        for task in [*streams, review_task]:
            task.cancel()
        await asyncio.gather(*streams, review_task, return_exceptions=True)
    finally:
        stop.set()
        await asyncio.gather(*tails, return_exceptions=True)
    if not watch.answered.is_set():
        raise DemoError(f"no orchestrator took the starts within {min(timeout, FIRST_ANSWER_SECONDS):g} s "
                        f"({topics.start} at {settings.kafka_bootstrap}): run `baton orchestrator` and the step "
                        "services, or `baton dev --run-demo` for the whole stack")
    return watch.runs


def _all_states(machine: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for state in machine.get("States", {}).values():
        found.append(state)
        for branch in state.get("Branches", []):
            found += _all_states(branch)
        if "ItemProcessor" in state:
            found += _all_states(state["ItemProcessor"])
    return found


def summary(runs: dict[str, DemoRun], *, metrics: dict[str, str] | None = None) -> list[str]:
    """The closing lines: each demo's outcome and answer, then where to look."""
    lines = ["", "Results:"]
    for run in runs.values():
        answer = _answer(run.output)
        lines.append(f"  {run.demo:<11} {run.status:<10} {run.seconds:5.1f}s  {len(run.states)} states"
                     + (f"  {answer}" if answer else f"  {run.error or ''}: {run.cause or ''}"))
    lines += ["", "Where to look:"]
    for run in runs.values():
        lines.append(f"  baton history {run.execution_id}")
    example = runs.get(SHOWN_STREAM) or next(iter(runs.values()), None)
    if example is not None and example.chunks:
        lines.append(f"  baton stream {example.execution_id} --since 3600   # replay a streamed answer")
    for name, url in (metrics or {}).items():
        lines.append(f"  {name:<13} {url}")
    return lines


def _answer(output: Any) -> str:
    if not isinstance(output, dict):
        return ""
    for key in ("itinerary", "story", "advice", "answer"):
        value = output.get(key)
        text = value.get("text") if isinstance(value, dict) else value
        if isinstance(text, str) and text:
            return " ".join(text.split())[:70] + "…"
    return ""


def run_and_report(settings: KafkaSettings, names: tuple[str, ...], *, auto_approve: bool, timeout: float = 300.0,
                   metrics: dict[str, str] | None = None) -> bool:
    click.echo(f"Running {len(names)} GenAI demos: {', '.join(names)}")
    began = time.monotonic()
    runs = asyncio.run(run_demos(settings, names, auto_approve=auto_approve, timeout=timeout))
    for line in summary(runs, metrics=metrics):
        click.echo(line)
    ok = all(run.status == "SUCCEEDED" for run in runs.values())
    click.echo(f"\n{'All demos SUCCEEDED' if ok else 'Some demos did not succeed'} in {time.monotonic() - began:.1f} s")
    return ok

"""`baton bench`: the W1-W5 benchmarks and the Kafka floor on the real local broker.

    baton bench [--quick] [--json FILE] [--only w1,w2,...]

See docs/performance.md for what each workload measures and the figures measured here.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from importlib import metadata
from typing import Any

import click

from bench.workloads import FULL, QUICK, run_all

NAMES = ("floor", "w1", "w2", "w3", "w4", "w5")


def _orchestrator_settings() -> dict[str, object]:
    """The settings the benchmarked services run with (from the environment, as they read them)."""
    from kafka_io import KafkaSettings
    from orchestrator.settings import OrchestratorSettings

    orchestrator, kafka = OrchestratorSettings(), KafkaSettings()
    return {"max_batch": orchestrator.max_batch, "fetch_max_wait_ms": kafka.fetch_max_wait_ms,
            "concurrent_transactions_backoff_ms": orchestrator.concurrent_transactions_backoff_ms}


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    except (OSError, StopIteration):
        mem = 0
    return {"cpus": os.cpu_count(), "cpu_model": model, "memory_gib": round(mem / 2**20, 1),
            "os": platform.platform(), "python": sys.version.split()[0]}


def table(report: dict[str, Any]) -> str:
    r = report["results"]
    rows: list[tuple[str, str]] = []
    if "floor" in r:
        f = r["floor"]
        rows.append(("floor plain round trip p50/p99", f"{f['plain']['p50_ms']} / {f['plain']['p99_ms']} ms"))
        rows.append(("floor transactional (read_committed) p50/p99",
                     f"{f['transactional']['p50_ms']} / {f['transactional']['p99_ms']} ms"))
    if "w1" in r:
        w = r["w1"]
        rows.append((f"W1 chain {w['executions']}x{w['steps']} ({w['in_flight']} in flight)",
                     f"{w['executions_per_s']} exec/s, {w['transitions_per_s']} transitions/s"))
        rows.append(("W1 per-Task overhead p50/p99", f"{w['task_overhead_p50_ms']} / {w['task_overhead_p99_ms']} ms"))
        if "unloaded" in w:
            u = w["unloaded"]
            ratio = f", {u['overhead_over_floor_p50']}x tx floor" if "overhead_over_floor_p50" in u else ""
            rows.append(("W1 unloaded (1 in flight) per-Task p50/p99",
                         f"{u['task_overhead_p50_ms']} / {u['task_overhead_p99_ms']} ms{ratio}; "
                         f"execution p50 {u['execution_latency_p50_ms']} ms"))
        if "overhead_over_floor_p50" in w:
            rows.append(("W1 overhead / floor (tx p50, plain p50, tx p99)",
                         f"{w['overhead_over_floor_p50']}x, {w['overhead_over_plain_floor_p50']}x, "
                         f"{w['overhead_over_floor_p99']}x"))
    if "w2" in r:
        for label in ("parallel", "map"):
            w = r["w2"][label]
            rows.append((f"W2 {label} of {w['tasks']}", f"{w['wall_seconds']} s, {w['ratio_to_ideal']}x ideal "
                         f"({w['ideal_seconds']} s); {w['ratio_to_loaded_path']}x waves x W1 p50"))
    if "w3" in r:
        w = r["w3"]
        rows.append((f"W3 start burst of {w['executions']}", f"{w['executions_per_s']} exec/s ({w['seconds']} s)"))
    if "w4" in r:
        w = r["w4"]
        rows.append((f"W4 {w['executions']} waiting", f"{w['rss_per_waiting_execution_kib']} KiB RSS each "
                     f"({w['rss_before_mib']} -> {w['rss_parked_mib']} MiB)"))
        rows.append(("W4 restore after restart", f"{w['restore_seconds']} s restore, "
                     f"{w['restart_to_ready_seconds']} s process start to ready"))
    if "w5" in r:
        for n in ("1", "2"):
            w = r["w5"][f"{n}_orchestrator"]
            cpu = ", ".join(f"{k} {v}" for k, v in w["cpu_ms_per_transition"].items())
            rows.append((f"W5 {n} orchestrator(s) + 2 fn", f"{w['transitions_per_s']} transitions/s; "
                         f"CPU ms/transition: {cpu}"))
        rows.append(("W5 speed-up 2 vs 1", f"{r['w5']['speedup']}x"))
    width = max(len(k) for k, _ in rows) if rows else 0
    head = [f"machine: {report['machine']['cpus']} CPUs {report['machine']['cpu_model']}, "
            f"{report['machine']['memory_gib']} GiB, Python {report['machine']['python']}",
            "versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()),
            f"settings: {json.dumps(report['settings'])}", ""]
    return "\n".join(head + [f"{k.ljust(width)}  {v}" for k, v in rows])


@click.group("bench", invoke_without_command=True)
@click.option("--quick", is_flag=True, help="scale every workload down (whole run under a minute)")
@click.option("--json", "json_file", type=click.Path(dir_okay=False), default=None, help="also write JSON here")
@click.option("--only", default=None, help=f"comma-separated subset of {','.join(NAMES)}")
@click.pass_context
def bench(context: click.Context, quick: bool, json_file: str | None, only: str | None) -> None:
    """Run the benchmarks (floor, W1-W5) on the local Kafka broker and print a table; `baton bench
    soak` runs the soak benchmark instead."""
    if context.invoked_subcommand is not None:
        return
    from infra.local_kafka import ensure_up, kafka_version, stop

    selected = set(only.split(",")) if only else None
    if selected and not selected <= set(NAMES):
        raise click.BadParameter(f"unknown workloads {sorted(selected - set(NAMES))}", param_hint="--only")
    from infra.progress import bar, shown

    began = time.perf_counter()
    broker = ensure_up()
    scale = QUICK if quick else FULL
    workloads = bar("bench", total=len([n for n in NAMES if selected is None or n in selected]), unit="workload")

    begun: list[str] = []

    def announce(message: str) -> None:  # "running w1 ...": the workload before it is done
        if not shown():
            click.echo(message, err=True)
            return
        workloads.update(1 if begun else 0)
        begun.append(message)
        workloads.set_description_str(message.removesuffix(" ..."))

    try:
        with workloads:
            results = run_all(broker.bootstrap, scale, selected, progress=announce)
            workloads.update(workloads.total - workloads.n)
    finally:
        stop(broker)
    report = {
        "machine": machine(),
        "versions": {"baton": _version("baton"), "kafka": kafka_version(), "aiokafka": _version("aiokafka"),
                     "faststream": _version("faststream"), "pydantic": _version("pydantic")},
        "settings": {"mode": "quick" if quick else "full", **scale.__dict__, "partitions": 3,
                     "broker": broker.bootstrap, "broker_started_here": broker.started_here,
                     **_orchestrator_settings()},
        "results": results,
        "total_seconds": round(time.perf_counter() - began, 1),
    }
    click.echo(table(report))
    click.echo(f"\ntotal {report['total_seconds']} s")
    if json_file:
        with open(json_file, "w") as handle:
            json.dump(report, handle, indent=2)
        click.echo(f"wrote {json_file}")


@bench.command("soak")
@click.option("--finished", default=1_000_000, show_default=True, type=click.IntRange(min=0),
              help="one-state executions to finish")
@click.option("--parked", default=1_000_000, show_default=True, type=click.IntRange(min=0),
              help="executions left waiting on a task token")
@click.option("--json", "json_file", type=click.Path(dir_okay=False), default=None, help="also write JSON here")
@click.option("--svg", "svg_file", type=click.Path(dir_okay=False), default=None,
              help="write the plot (RSS and restart time against the counts) as SVG here")
def soak_command(finished: int, parked: int, json_file: str | None, svg_file: str | None) -> None:
    """A long stream of executions through one orchestrator: RSS, state topic and store size, and
    same-host restart time as finished and parked executions accumulate; then a takeover."""
    from bench.soak import soak
    from bench.soak_plot import svg
    from infra.local_kafka import ensure_up, stop

    broker = ensure_up()
    try:
        report = soak(broker.bootstrap, finished, parked, progress=lambda line: click.echo(line, err=True))
    finally:
        stop(broker)
    report["machine"] = machine()
    columns = ("count", "rss_mib", "state_topic_mib", "store_mib", "restart_to_ready_s", "restore_s",
               "records_read", "rss_after_restart_mib", "applied_per_s")
    click.echo("kind      " + " ".join(f"{c:>14}" for c in columns))
    for kind in ("finished", "parked"):
        for row in report[kind]:
            click.echo(f"{kind:9} " + " ".join(f"{str(row.get(c)):>14}" for c in columns))
    click.echo(f"takeover (store deleted): {json.dumps(report['takeover'])}")
    if json_file:
        with open(json_file, "w") as handle:
            json.dump(report, handle, indent=2)
        click.echo(f"wrote {json_file}")
    if svg_file:
        with open(svg_file, "w") as handle:
            handle.write(svg(report))
        click.echo(f"wrote {svg_file}")


@bench.command("payloads")
@click.option("--sizes", default="1,5,20", show_default=True, help="payload sizes in MiB, comma-separated")
@click.option("--repeat", default=5, show_default=True, type=click.IntRange(min=1), help="runs per size (median)")
@click.option("--json", "json_file", type=click.Path(dir_okay=False), default=None, help="also write JSON here")
def payloads_command(sizes: str, repeat: int, json_file: str | None) -> None:
    """The claim check's overhead per offloaded payload against the payload store's own put and
    get (a folder by default; BATON_PAYLOAD_STORE=s3://... and its BATON_PAYLOAD_S3_* settings
    measure a bucket), and a state's packed size held hydrated against as references."""
    from bench.payloads import run
    from kafka_io.payloads import PayloadSettings

    try:
        sizes_mib = tuple(float(size) for size in sizes.split(","))
    except ValueError:
        raise click.BadParameter(f"not a list of numbers: {sizes!r}", param_hint="--sizes") from None
    settings = PayloadSettings()
    report = run(sizes_mib, repeat, settings if settings.payload_store else None)
    report["machine"] = machine()
    click.echo(f"store: {report['store']}")
    click.echo(f"{'bytes':>12} {'store put+get ms':>17} {'claim check ms':>15} {'ratio':>7} {'overhead ms/MiB':>16}")
    for row in report["sizes"]:
        click.echo(f"{row['bytes']:>12,} {row['store_put_get_ms']:>17} {row['claim_check_ms']:>15} "
                   f"{row['ratio']:>6}x {row['overhead_ms_per_mib']:>16}")
    for row in report["memory"]:
        click.echo(f"state holding a {row['document_bytes']:,}-byte document twice: packed "
                   f"{row['packed_hydrated_bytes']:,} bytes hydrated, {row['packed_referenced_bytes']:,} as "
                   f"references; hydrating it {row['hydrate_per_decision_ms']} ms")
    if json_file:
        with open(json_file, "w") as handle:
            json.dump(report, handle, indent=2)
        click.echo(f"wrote {json_file}")

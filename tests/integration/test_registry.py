"""State machines as deployed things, on the real broker: the registry topic, versions, weighted
aliases, pinning across restarts, takeovers and redrives, followers, and the CLI's errors."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import math
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from kafka_io import KafkaSettings
from orchestrator.api.readmodel import ReadModel
from orchestrator.cli import registry as registry_cli
from orchestrator.registry import model
from orchestrator.registry.model import definition_hash
from orchestrator.registry.store import read_registry
from orchestrator.registry.writer import RegistryWriter
from orchestrator.runtime.service import Orchestrator
from orchestrator.settings import OrchestratorSettings
from schemas.base import encode
from schemas.executions import ExecutionStatus, RedriveExecution, StartExecution, execution_id_for
from schemas.registry import AliasRoute
from schemas.review import ReviewDecision
from steps.fn.service import fn_service
from tests.integration.runtime_support import RuntimeClient, eventually, read_all

STEPS = "tests.integration.steps_for_tests"



@contextlib.asynccontextmanager
async def running(kafka: KafkaSettings, *instances: str) -> AsyncIterator[list[Orchestrator]]:
    """Orchestrator instances (one consumer group) and a fn step service, for the block's duration."""
    stop = asyncio.Event()
    orchestrators = [Orchestrator(kafka, OrchestratorSettings(instance_id=instance, metrics_port=None))
                     for instance in instances or ("o1",)]
    tasks = [asyncio.create_task(o.run(stop)) for o in orchestrators]
    try:
        async with fn_service([STEPS], settings=kafka):
            for orchestrator in orchestrators:
                await asyncio.wait_for(orchestrator.ready.wait(), 60)
            yield orchestrators
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 60)


async def start(client: RuntimeClient, reference: str, name: str | None = None, execution_input: Any = None) -> str:
    """Publish a start naming a registered state machine (no inline definition), as `baton start NAME` does."""
    name = name or uuid.uuid4().hex[:12]
    execution_id = execution_id_for(reference, name)
    request = StartExecution(execution_id=execution_id, state_machine=reference, name=name,
                             input={} if execution_input is None else execution_input)
    await client.producer.send(client.topics.start, encode(request), key=execution_id.encode())
    return execution_id


def stamped(version: int) -> dict[str, Any]:
    """Stamps its version into the output, then runs a task on the real fn service."""
    return {"Comment": f"version {version}", "StartAt": "Stamp", "States": {
        "Stamp": {"Type": "Pass", "Result": version, "ResultPath": "$.version", "Next": "Echo"},
        "Echo": {"Type": "Task", "Resource": "baton:fn:echo", "End": True}}}


def approved(version: int) -> dict[str, Any]:
    """Waits for a human decision (callback), then stamps its version into the output."""
    return {"StartAt": "Approve", "States": {
        "Approve": {"Type": "Task", "Resource": "baton:fn:request_approval.waitForTaskToken",
                    "Parameters": {"token.$": "$$.Task.Token"}, "ResultPath": "$.review", "Next": "Stamp"},
        "Stamp": {"Type": "Pass", "Result": version, "ResultPath": "$.version", "End": True}}}


def routes(*pairs: tuple[int, int]) -> list[AliasRoute]:
    return [AliasRoute(version=v, weight=w) for v, w in pairs]


def test_a_weighted_alias_splits_executions_and_each_runs_its_own_version(kafka: KafkaSettings) -> None:
    """Alias 100% -> v1 for 20 executions, then 80/20 -> v1/v2 for 200: both versions run, the
    split is within a binomial tolerance, and every execution's output is its version's."""

    async def scenario() -> None:
        writer = RegistryWriter(kafka)
        first = await writer.deploy("Greeter", stamped(1), publish=True, description="first")
        assert first.version is not None and first.version.version == 1
        await writer.set_alias("Greeter", "live", routes((1, 100)))
        async with running(kafka) as (orchestrator,), RuntimeClient(kafka) as client:
            ids = [await start(client, "Greeter:live", f"a{i}", {"i": i}) for i in range(20)]
            outcomes = await client.wait(ids, timeout=90)
            assert {(o.status, o.output["version"], o.version, o.alias) for o in outcomes.values()} == {
                ("SUCCEEDED", 1, 1, "live")}
            assert {o.definition_hash for o in outcomes.values()} == {definition_hash(stamped(1))}

            second = await writer.deploy("Greeter", stamped(2), publish=True, description="second")
            assert second.version is not None and second.version.version == 2
            await writer.set_alias("Greeter", "live", routes((1, 80), (2, 20)))
            alias = (await read_registry(kafka))["Greeter"].aliases["live"]
            count = 200
            names = [f"b{i}-{uuid.uuid4().hex[:6]}" for i in range(count)]
            ids = [await start(client, "Greeter:live", name, {"n": name}) for name in names]
            outcomes = await client.wait(ids, timeout=180)
            by_version = collections.Counter(o.version for o in outcomes.values())
            for name, execution_id in zip(names, ids):
                outcome = outcomes[execution_id]
                assert outcome.status == "SUCCEEDED", outcome
                assert outcome.output == {"n": name, "version": outcome.version}  # ran its own version
                assert outcome.version == model.route("Greeter", alias, name)  # deterministic per name
                assert outcome.definition_hash == definition_hash(stamped(outcome.version or 0))
            expected, sd = count * 0.2, math.sqrt(count * 0.2 * 0.8)
            print(f"\nsplit of {count}: v1={by_version[1]} v2={by_version[2]} (expected v2 {expected:.0f} "
                  f"+- {sd:.1f}, tolerance 4.5 sd)")
            assert set(by_version) == {1, 2}
            assert abs(by_version[2] - expected) <= 4.5 * sd
            started = orchestrator.metrics.started
            assert started.labels("Greeter", "1")._value.get() == 20 + by_version[1]
            assert started.labels("Greeter", "2")._value.get() == by_version[2]
            finished = orchestrator.metrics.finished
            assert finished.labels("SUCCEEDED", "Greeter", "2")._value.get() == by_version[2]

    asyncio.run(scenario())


def test_executions_keep_their_version_across_restart_takeover_and_redrive(kafka: KafkaSettings,
                                                                            tmp_path: Path) -> None:
    """Executions started on v1 wait for a decision; the orchestrator stops, v2 is published and
    the alias moves; another instance takes over: the old executions finish on v1 (one after a
    failure and a redrive), new ones run v2. Describe and history show version and alias."""

    async def commands_for(client: RuntimeClient, execution_ids: list[str], count: int = 1) -> dict[str, Any]:
        """The latest run command of each execution, once each has had `count` of them."""

        async def found() -> dict[str, Any] | None:
            runs: dict[str, list[Any]] = collections.defaultdict(list)
            for command in await client.commands():
                if command.kind == "run":
                    runs[command.execution_id].append(command)
            if all(len(runs[e]) >= count for e in execution_ids):
                return {e: runs[e][-1] for e in execution_ids}
            return None

        latest: dict[str, Any] = await eventually(found, timeout=60)
        return latest

    async def decide(client: RuntimeClient, command: Any, outcome: str = "success") -> None:
        decision = ReviewDecision(execution_id=command.execution_id, task_token=command.task_token, outcome=outcome,
                                  output={"ok": True} if outcome == "success" else None,
                                  error="Rejected" if outcome == "failure" else None)
        await client.publish(kafka.topics.review_decisions, encode(decision), command.execution_id.encode())

    async def scenario() -> None:
        writer = RegistryWriter(kafka)
        await writer.deploy("Flow", approved(1), publish=True)
        await writer.set_alias("Flow", "prod", routes((1, 100)))
        async with RuntimeClient(kafka) as client:
            async with running(kafka, "o1"):
                old = [await start(client, "Flow:prod", f"old{i}") for i in range(6)]
                first_commands = await commands_for(client, old)
            # The orchestrator is down: the draft, a new version and the alias all move on.
            await writer.deploy("Flow", approved(2), publish=True)
            await writer.set_alias("Flow", "prod", routes((2, 100)))
            async with running(kafka, "o2"):  # another instance takes over from the state topic
                new = [await start(client, "Flow:prod", f"new{i}") for i in range(3)]
                new_commands = await commands_for(client, new)
                for execution_id in old[:-1]:
                    await decide(client, first_commands[execution_id])
                await decide(client, first_commands[old[-1]], "failure")
                for execution_id in new:
                    await decide(client, new_commands[execution_id])
                outcomes = await client.wait(old + new, timeout=60)
                assert {(outcomes[e].status, outcomes[e].output["version"], outcomes[e].version)
                        for e in old[:-1]} == {("SUCCEEDED", 1, 1)}
                assert {(outcomes[e].status, outcomes[e].output["version"], outcomes[e].version)
                        for e in new} == {("SUCCEEDED", 2, 2)}
                failed = outcomes[old[-1]]
                assert (failed.status, failed.version, failed.alias) == ("FAILED", 1, "prod")

                # Redrive after the alias moved: still version 1.
                await client.publish(kafka.topics.start, encode(RedriveExecution(execution_id=old[-1])),
                                     old[-1].encode())
                retry = (await commands_for(client, [old[-1]], count=2))[old[-1]]
                await decide(client, retry)

                async def redriven() -> ExecutionStatus | None:
                    for record in await read_all(kafka, kafka.topics.events):
                        status = ExecutionStatus.model_validate_json(record.value)
                        if status.execution_id == old[-1] and status.status == "SUCCEEDED":
                            return status
                    return None

                done: ExecutionStatus = await eventually(redriven, timeout=60)
                assert (done.output["version"], done.version, done.alias, done.redrive_count) == (1, 1, "prod", 1)

        history = await client.history()
        started = next(e for e in history[old[0]] if e["type"] == "ExecutionStarted")
        details = started["executionStartedEventDetails"]
        assert details["stateMachineVersionArn"].endswith("stateMachine:Flow:1")
        assert details["stateMachineAliasArn"].endswith("stateMachine:Flow:prod")
        with ReadModel(tmp_path / "readmodel.sqlite") as read_model:
            await read_model.catch_up(kafka, timeout=60)
            view = read_model.describe("old0")
            assert view is not None
            assert (view.name, view.state_machine, view.version, view.alias, view.status) == (
                "old0", "Flow", 1, "prod", "SUCCEEDED")
            assert view.definition_hash == definition_hash(approved(1))
            redriven_view = read_model.describe(old[-1])
            assert redriven_view is not None and (redriven_view.version, redriven_view.status) == (1, "SUCCEEDED")
            newer = read_model.describe("new0")
            assert newer is not None and (newer.version, newer.alias) == (2, "prod")

    asyncio.run(scenario())


def cli(kafka: KafkaSettings, command: Any, *args: str) -> Result:
    options = ["--bootstrap", kafka.kafka_bootstrap, "--topic-prefix", kafka.topic_prefix]
    return CliRunner().invoke(command, [*args, *options], catch_exceptions=False)


def test_two_instances_follow_deployments_from_the_cli_and_the_api_within_a_second(
        kafka: KafkaSettings, tmp_path: Path) -> None:
    async def visible_in(orchestrators: list[Orchestrator], check: Any, since: float) -> float:
        deadline = time.monotonic() + 5
        while not all(check(o.registry.records) for o in orchestrators):
            assert time.monotonic() < deadline, "the deployment did not reach every instance"
            await asyncio.sleep(0.005)
        return time.monotonic() - since

    async def scenario() -> None:
        path = tmp_path / "Fresh.json"
        path.write_text(json.dumps(stamped(1)))
        async with running(kafka, "o1", "o2") as orchestrators, RuntimeClient(kafka) as client:
            assert all(not o.registry.records for o in orchestrators)
            begun = time.monotonic()
            result = await asyncio.to_thread(cli, kafka, registry_cli.deploy, str(path), "--publish")
            assert result.exit_code == 0, result.output
            assert result.stdout.startswith("deployed Fresh (draft ") and "; version 1" in result.stdout
            via_cli = await visible_in(orchestrators, lambda r: "Fresh" in r, time.monotonic())
            cli_follow = [o.registry.last_follow_seconds or 0.0 for o in orchestrators]

            begun_api = time.monotonic()
            await RegistryWriter(kafka).deploy("Fresh", stamped(2), publish=True)
            returned = time.monotonic()
            via_api = await visible_in(orchestrators, lambda r: "Fresh" in r and r["Fresh"].last_version == 2,
                                       returned)
            api_follow = [o.registry.last_follow_seconds or 0.0 for o in orchestrators]
            print(f"\nCLI deploy took {time.monotonic() - begun:.2f}s end to end; both instances had it "
                  f"{via_cli * 1000:.0f} ms after the CLI returned; write->applied "
                  f"{max(cli_follow) * 1000:.0f} ms")
            print(f"API deploy took {returned - begun_api:.2f}s; both instances had it {via_api * 1000:.0f} ms after "
                  f"it returned; write->applied {max(api_follow) * 1000:.0f} ms")
            assert via_cli < 1.0 and via_api < 1.0
            assert max(cli_follow) < 1.0 and max(api_follow) < 1.0

            # No restart: both instances start executions of what was just deployed.
            async def shared() -> bool:
                return sorted(len(o.owned) for o in orchestrators) == [1, 2]

            await eventually(shared, timeout=30)
            ids = [await start(client, reference, f"{i}") for i, reference in
                   enumerate(["Fresh", "Fresh:1", "Fresh:2"] * 4)]
            outcomes = await client.wait(ids, timeout=60)
            assert [o.output["version"] for o in outcomes.values()] == [2, 1, 2] * 4
            assert [o.version for o in outcomes.values()] == [None, 1, 2] * 4
            assert not await client.dead_letters()

    asyncio.run(scenario())


def test_mistakes_get_one_clear_line_and_unknown_starts_go_to_the_dlq(kafka: KafkaSettings, tmp_path: Path) -> None:
    broken = tmp_path / "Broken.json"
    broken.write_text(json.dumps({"StartAt": "Nowhere", "States": {"A": {"Type": "Pass", "End": True}}}))
    good = tmp_path / "good.json"
    good.write_text(json.dumps(stamped(1)))
    better = tmp_path / "better.yaml"
    better.write_text(json.dumps(stamped(2)))

    def refused(result: Result, message: str) -> None:
        assert result.exit_code == 2, result.output
        assert result.stderr == f"error: {message}\n"

    result = cli(kafka, registry_cli.deploy, str(broken))
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: invalid definition for 'Broken' (2 problem(s)): $.StartAt: ")
    assert asyncio.run(read_registry(kafka)) == {}  # nothing was stored
    refused(cli(kafka, registry_cli.versions, "Nope"), "no state machine named 'Nope' is registered")
    refused(cli(kafka, registry_cli.state_machine, "Nope"), "no state machine named 'Nope' is registered")
    refused(cli(kafka, registry_cli.alias, "set", "Nope", "prod", "--version", "1"),
            "no state machine named 'Nope' is registered")

    assert cli(kafka, registry_cli.deploy, str(good), "--name", "G", "--publish").exit_code == 0
    assert cli(kafka, registry_cli.deploy, str(better), "--name", "G", "--publish",
               "--description", "shorter").stdout.endswith("; version 2\n")
    again = cli(kafka, registry_cli.deploy, str(better), "--name", "G", "--publish")
    assert "unchanged" in again.stdout and again.stdout.endswith("; version 2\n")
    refused(cli(kafka, registry_cli.alias, "set", "G", "prod", "--version", "9"),
            "state machine 'G' has no version 9 (versions: 1, 2)")
    refused(cli(kafka, registry_cli.alias, "set", "G", "prod", "--version", "1", "--version", "2",
                "--weight", "80", "--weight", "30"), "alias weights must sum to 100, got 80 + 30 = 110")
    moved = cli(kafka, registry_cli.alias, "set", "G", "prod", "--version", "1", "--version", "2", "--weight", "20")
    assert moved.stdout == "alias prod of G -> version 1 (80%), version 2 (20%)\n"
    refused(cli(kafka, registry_cli.delete_version, "G", "1"),
            "version 1 of 'G' is used by alias(es) prod; point them at another version first")
    refused(cli(kafka, registry_cli.delete_version, "G", "7"), "state machine 'G' has no version 7 (versions: 1, 2)")

    listing = cli(kafka, registry_cli.state_machines)
    assert listing.exit_code == 0 and listing.stdout.splitlines()[1].split()[:4] == ["G", "1,", "2", "prod"]
    described = cli(kafka, registry_cli.state_machine, "G")
    assert described.exit_code == 0
    assert "version 1 (80%), version 2 (20%)" in described.stdout and '"version 2"' in described.stdout
    table = cli(kafka, registry_cli.versions, "G", "--json")
    assert [(v["version"], v["aliases"], v["description"]) for v in json.loads(table.stdout)] == [
        (1, "prod (80%)", None), (2, "prod (20%)", "shorter")]
    assert cli(kafka, registry_cli.alias, "set", "G", "prod", "--version", "2").exit_code == 0
    assert cli(kafka, registry_cli.delete_version, "G", "1").stdout == "deleted version 1 of G\n"
    assert [v.version for v in asyncio.run(read_registry(kafka))["G"].versions] == [2]

    async def scenario() -> None:
        async with running(kafka), RuntimeClient(kafka) as client:
            for reference in ("Nope", "G:1", "G:beta", "G:1:2"):
                await start(client, reference)
            ok = [await start(client, "G:prod"), await start(client, "arn:aws:states:eu-west-1:1:stateMachine:G:2")]
            outcomes = await client.wait(ok, timeout=60)
            assert {(o.status, o.version) for o in outcomes.values()} == {("SUCCEEDED", 2)}
            letters = await client.dead_letters()
            assert sorted(d.reason for d in letters) == [
                "unknown_state_machine: 'G:1:2' is not a state machine reference: use NAME, NAME:VERSION, NAME:ALIAS "
                "or arn:aws:states:REGION:ACCOUNT:stateMachine:NAME[:VERSION|:ALIAS]",
                "unknown_state_machine: no state machine named 'Nope' is registered",
                "unknown_state_machine: state machine 'G' has no alias 'beta' (aliases: prod)",
                "unknown_state_machine: state machine 'G' has no version 1 (versions: 2)",
            ]
            assert all(d.value_b64 for d in letters)

    asyncio.run(scenario())


def test_concurrent_writers_of_one_state_machine_lose_nothing(kafka: KafkaSettings) -> None:
    """Six writers deploy and publish different definitions of one name at once: six versions,
    each number once, each definition once (writes of a name are serialised by fencing)."""

    async def scenario() -> None:
        results = await asyncio.gather(*[RegistryWriter(kafka).deploy("Busy", stamped(i), publish=True)
                                         for i in range(1, 7)])
        numbers = sorted(r.version.version for r in results if r.version is not None)
        assert numbers == [1, 2, 3, 4, 5, 6]
        record = (await read_registry(kafka))["Busy"]
        assert record.revision == 6
        assert sorted(v.definition["Comment"] for v in record.versions) == [f"version {i}" for i in range(1, 7)]
        for result in results:
            assert result.version is not None
            assert model.find_version(record, result.version.version).definition_hash == result.version.definition_hash

    asyncio.run(scenario())

"""Topic provisioning against the real broker: shape, idempotence, races, refusals."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from kafka_io import KafkaSettings
from orchestrator.runtime.topics import TopicProvisioningError, ensure_topics, provision_topics

T = TypeVar("T")
TIMEOUT_S = 60.0
# Not the broker's default (3), so a topic with this count was shaped by ensure_topics.
PARTITIONS = 2


def run(make: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(make(), TIMEOUT_S)

    return asyncio.run(bounded())


async def with_admin(bootstrap: str, use: Callable[[Any], Awaitable[T]]) -> T:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        return await use(admin)
    finally:
        await admin.close()


@pytest.fixture
def settings(kafka_bootstrap: str, topic_prefix: str) -> Iterator[KafkaSettings]:
    """Settings whose topics are this test's alone; they are deleted afterwards."""
    prefix = topic_prefix.rstrip(".")  # Topics adds the dot itself
    yield KafkaSettings(kafka_bootstrap=kafka_bootstrap, topic_prefix=prefix, partitions=PARTITIONS)

    async def delete(admin: Any) -> None:
        ours = [name for name in await admin.list_topics() if name.startswith(f"{prefix}.")]
        if ours:
            await admin.delete_topics(ours)

    run(lambda: with_admin(kafka_bootstrap, delete))


def expected_topics(settings: KafkaSettings,
                    services: tuple[str, ...] = ("fn", "llm", "http", "review", "retrieval", "mcp")) -> list[str]:
    topics = settings.topics
    return topics.all_fixed() + [topics.commands(service) for service in services]


def describe(settings: KafkaSettings) -> tuple[dict[str, int], dict[str, str]]:
    """(partition count, cleanup.policy) of every topic under the settings' prefix."""

    async def read(admin: Any) -> tuple[dict[str, int], dict[str, str]]:
        names = [n for n in await admin.list_topics() if n.startswith(f"{settings.topic_prefix}.")]
        if not names:
            return {}, {}
        counts = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(names)}
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, n, {"cleanup.policy": None}) for n in names])
        policies = {resource["resource_name"]: entry["config_value"]
                    for response in responses for resource in response.to_object()["resources"]
                    for entry in resource["config_entries"] if entry["config_names"] == "cleanup.policy"}
        return counts, policies

    return run(lambda: with_admin(settings.kafka_bootstrap, read))


def create_topic(settings: KafkaSettings, name: str, partitions: int, configs: dict[str, str] | None = None) -> None:
    async def create(admin: Any) -> None:
        response = await admin.create_topics([NewTopic(name, partitions, 1, topic_configs=configs or {})])
        assert [code for _, code, *_ in response.topic_errors] == [0]

    run(lambda: with_admin(settings.kafka_bootstrap, create))


def test_creates_every_topic_with_partitions_and_compaction(settings: KafkaSettings) -> None:
    created = run(lambda: ensure_topics(settings))

    wanted = expected_topics(settings)
    assert created == wanted
    counts, policies = describe(settings)
    assert counts == {name: PARTITIONS for name in wanted}
    compacted = {settings.topics.state, settings.topics.statemachines}
    assert {name for name, policy in policies.items() if policy == "compact"} == compacted
    assert all(policies[name] == "delete" for name in wanted if name not in compacted)


def test_second_call_creates_nothing_and_reports_existing(settings: KafkaSettings) -> None:
    run(lambda: ensure_topics(settings, ["fn"]))

    assert run(lambda: ensure_topics(settings, ["fn"])) == []
    # A new step service only adds its command topic.
    report = run(lambda: provision_topics(settings, ["fn", "summarise"]))
    assert report.created == [settings.topics.commands("summarise")]
    assert report.existing == expected_topics(settings, ("fn",))


def test_concurrent_provisioners_each_topic_created_once(settings: KafkaSettings) -> None:
    async def race() -> list[list[str]]:
        return list(await asyncio.gather(*(ensure_topics(settings) for _ in range(3))))

    results = run(race)

    created = [name for result in results for name in result]
    assert sorted(created) == sorted(expected_topics(settings)), "every topic created exactly once"
    counts, _ = describe(settings)
    assert set(counts.values()) == {PARTITIONS}


def test_mismatched_partitions_on_an_input_topic_is_refused_by_name(settings: KafkaSettings) -> None:
    start = settings.topics.start
    create_topic(settings, start, partitions=PARTITIONS + 1)

    with pytest.raises(TopicProvisioningError) as raised:
        run(lambda: ensure_topics(settings))

    message = str(raised.value)
    assert start in message and f"has {PARTITIONS + 1}" in message and f"expected {PARTITIONS}" in message
    assert "co-partitioned" in message
    assert "\n" not in message
    # Refused before creating anything: the cluster is as it was.
    counts, _ = describe(settings)
    assert counts == {start: PARTITIONS + 1}


def test_other_topics_may_have_another_partition_count(settings: KafkaSettings) -> None:
    history = settings.topics.history  # not read by the orchestrator: no co-partitioning needed
    create_topic(settings, history, partitions=1)

    created = run(lambda: ensure_topics(settings))

    assert history not in created
    counts, _ = describe(settings)
    assert counts[history] == 1


def test_uncompacted_state_topic_is_refused(settings: KafkaSettings) -> None:
    state = settings.topics.state
    create_topic(settings, state, partitions=PARTITIONS, configs={"cleanup.policy": "delete"})

    with pytest.raises(TopicProvisioningError, match=rf"{state} \(cleanup.policy=delete\).*compact"):
        run(lambda: ensure_topics(settings))


def test_unreachable_broker_is_one_clear_error() -> None:
    settings = KafkaSettings(kafka_bootstrap="127.0.0.1:1", topic_prefix="unreachable")

    with pytest.raises(TopicProvisioningError, match=r"^cannot reach Kafka at 127\.0\.0\.1:1"):
        run(lambda: ensure_topics(settings))


def test_unsatisfiable_replication_factor_is_refused_before_creating_anything(settings: KafkaSettings) -> None:
    greedy = settings.model_copy(update={"replication_factor": 100})  # more replicas than brokers

    with pytest.raises(TopicProvisioningError, match=r"^cannot create topics .*InvalidReplicationFactorError"):
        run(lambda: ensure_topics(greedy))

    counts, _ = describe(settings)
    assert counts == {}


def test_cli_topics_reports_created_then_existing_and_fails_in_one_line(settings: KafkaSettings) -> None:
    from click.testing import CliRunner

    from orchestrator.cli.kafka import kafka

    runner = CliRunner()
    args = ["topics", "--bootstrap", settings.kafka_bootstrap, "--prefix", settings.topic_prefix,
            "--partitions", str(PARTITIONS), "--service", "fn"]
    first = runner.invoke(kafka, args)
    assert first.exit_code == 0, first.output
    assert f"created  {settings.topics.state} ({PARTITIONS} partitions, compacted)" in first.stdout
    assert first.stdout.rstrip().endswith(f"11 created, 0 already existed on {settings.kafka_bootstrap}")

    second = runner.invoke(kafka, args)
    assert second.exit_code == 0
    assert f"exists   {settings.topics.start}" in second.stdout and "0 created, 11 already" in second.stdout

    mismatch = runner.invoke(kafka, [*args[:-4], "--partitions", str(PARTITIONS + 1)])
    assert mismatch.exit_code == 1
    assert mismatch.stderr.startswith("error: partition count mismatch:") and mismatch.stderr.count("\n") == 1

"""Topic provisioning: create Baton's topics (DESIGN.md, "Topics") with the right shape.

Baton's brokers run with automatic topic creation off, so every topic is created here, explicitly:
``settings.partitions`` partitions, ``settings.replication_factor`` replicas,
``min.insync.replicas`` when ``settings.min_insync_replicas`` is set, and
``cleanup.policy=compact`` for the keyed changelogs (execution state, state machine registry).

Existing topics are checked, never altered. The orchestrator's input topics and the state topic
are co-partitioned by execution id (one orchestrator instance owns an execution across all of
them), so they must all have the same partition count; a mismatch is an error naming the topic.
Adding partitions to "fix" one would move existing keys to other partitions and split the
ownership of running executions, so that is left to an operator who knows what it costs.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin import NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, for_code

from kafka_io import KafkaSettings, new_admin
from schemas.errors import BatonError
from schemas.topics import STEP_SERVICES

DEFAULT_SERVICES: tuple[str, ...] = STEP_SERVICES

_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")  # Kafka's own rule for topic names
_REQUEST_TIMEOUT_MS = 30_000
# Metadata for a topic created a moment ago (by us or a concurrent provisioner) can lag behind
# on other brokers: these codes mean "ask again shortly", not "wrong".
_UNKNOWN_TOPIC_OR_PARTITION = 3
_LEADER_NOT_AVAILABLE = 5
_TOPIC_ALREADY_EXISTS = 36
_RETRIABLE_METADATA = {_UNKNOWN_TOPIC_OR_PARTITION, _LEADER_NOT_AVAILABLE}
_METADATA_ATTEMPTS = 20
_METADATA_BACKOFF_S = 0.25


class TopicProvisioningError(BatonError, RuntimeError):
    """Topics cannot be provisioned as Baton needs them; the message is one line for a user."""


@dataclass(frozen=True)
class TopicSpec:
    """One topic Baton needs and the shape it must have."""

    name: str
    partitions: int
    compacted: bool = False
    co_partitioned: bool = False  # an orchestrator input topic or the state topic
    min_insync_replicas: int | None = None  # None: the broker's default

    @property
    def configs(self) -> dict[str, str]:
        configs = {"cleanup.policy": "compact"} if self.compacted else {}
        if self.min_insync_replicas is not None:
            configs["min.insync.replicas"] = str(self.min_insync_replicas)
        return configs


@dataclass
class ProvisionReport:
    """What :func:`provision_topics` did: topics created now, and topics that were already there."""

    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)


def topic_specs(settings: KafkaSettings, services: Iterable[str] = DEFAULT_SERVICES) -> list[TopicSpec]:
    """Every topic of DESIGN.md under ``settings.topic_prefix``: the fixed ones plus one command
    topic per step service (duplicates ignored). Raises on a name Kafka would refuse."""
    topics = settings.topics
    min_isr = settings.min_insync_replicas
    if min_isr is not None and min_isr > settings.replication_factor:
        # Kafka would create such topics, but no acks=all write to them could ever succeed.
        raise TopicProvisioningError(
            f"min.insync.replicas {min_isr} exceeds the replication factor "
            f"{settings.replication_factor}: every transactional write would be refused")
    co_partitioned = {*topics.orchestrator_inputs, topics.state}
    names = topics.all_fixed() + [topics.commands(service) for service in dict.fromkeys(services)]
    specs: list[TopicSpec] = []
    for name in dict.fromkeys(names):
        # "." and ".." are legal characters but not legal names.
        if not _TOPIC_NAME.match(name) or name in (".", ".."):
            raise TopicProvisioningError(
                f"invalid topic name {name!r}: Kafka allows 1-249 characters of [A-Za-z0-9._-] "
                "(check the topic prefix and the step service names)")
        specs.append(TopicSpec(name=name, partitions=settings.partitions,
                               compacted=name in topics.compacted,
                               co_partitioned=name in co_partitioned,
                               min_insync_replicas=min_isr))
    return specs


async def ensure_topics(settings: KafkaSettings,
                        services: Iterable[str] = DEFAULT_SERVICES) -> list[str]:
    """Create every topic Baton needs that does not exist yet; return the names created.

    Idempotent, and safe to run from several processes at once (a topic another provisioner
    creates first counts as existing and is checked like one). Raises
    :class:`TopicProvisioningError` if Kafka cannot be reached, a topic cannot be created, or an
    existing topic has the wrong shape (co-partition count, compaction).
    """
    return (await provision_topics(settings, services)).created


async def provision_topics(settings: KafkaSettings,
                           services: Iterable[str] = DEFAULT_SERVICES) -> ProvisionReport:
    """:func:`ensure_topics`, also reporting which topics were already there."""
    specs = topic_specs(settings, services)
    admin = new_admin(settings, request_timeout_ms=_REQUEST_TIMEOUT_MS)
    try:
        try:
            await admin.start()
        except (KafkaError, OSError) as exc:
            raise TopicProvisioningError(
                f"cannot reach Kafka at {settings.kafka_bootstrap}: {_describe(exc)}") from exc
        return await _provision(admin, settings, specs)
    # OSError includes TimeoutError, which aiokafka's admin raises when a node is not ready in time.
    except (KafkaError, OSError) as exc:
        raise TopicProvisioningError(
            f"Kafka at {settings.kafka_bootstrap} failed a request: {_describe(exc)}") from exc
    finally:
        await admin.close()


async def _provision(admin: Any, settings: KafkaSettings, specs: list[TopicSpec]) -> ProvisionReport:
    # list_topics asks for all topics; asking for the wanted names instead would let a broker
    # with auto.create.topics.enable=true create them with its default shape as a side effect.
    listed = set(await admin.list_topics())
    present = [spec for spec in specs if spec.name in listed]
    missing = [spec for spec in specs if spec.name not in listed]
    # A broker's metadata lags the controller by a moment, so a topic created just now (by
    # another provisioner) may not be listed yet. A dry run at the controller finds those, and
    # topics it would refuse (e.g. too many replicas), before anything is created.
    _, unlisted = await _create(admin, settings, missing, validate_only=True)
    present += unlisted
    missing = [spec for spec in missing if spec not in unlisted]
    # Check before creating anything, so a refused run leaves the cluster as it found it.
    await _check_existing(admin, settings, present)
    created, raced = await _create(admin, settings, missing)
    await _check_existing(admin, settings, raced)
    await _until_listed(admin, [spec.name for spec in specs])
    return ProvisionReport(created=created,
                           existing=[spec.name for spec in specs if spec.name not in created])


async def _until_listed(admin: Any, names: list[str], timeout: float = 30.0) -> None:
    """Return once the broker's metadata lists every topic: a client started right after
    provisioning (a step service checking its topics) must find them."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not set(names) <= set(await admin.list_topics()):
        if asyncio.get_running_loop().time() > deadline:
            raise TopicProvisioningError(f"topics created but not listed by the broker after {timeout:g} s")
        await asyncio.sleep(0.1)


async def _create(admin: Any, settings: KafkaSettings, missing: list[TopicSpec], *,
                  validate_only: bool = False) -> tuple[list[str], list[TopicSpec]]:
    """Create ``missing`` (or only ask the controller whether it would); return (names created or
    creatable, specs of topics that exist already: someone else created them meanwhile)."""
    if not missing:
        return [], []
    response = await admin.create_topics(
        [NewTopic(spec.name, spec.partitions, settings.replication_factor,
                  topic_configs=spec.configs) for spec in missing],
        timeout_ms=_REQUEST_TIMEOUT_MS, validate_only=validate_only)
    by_name = {spec.name: spec for spec in missing}
    created: list[str] = []
    raced: list[TopicSpec] = []
    failures: dict[str, list[str]] = {}  # one reason (often shared by all) -> its topics
    for name, code, *rest in response.topic_errors:
        if code == 0:
            created.append(name)
        elif code == _TOPIC_ALREADY_EXISTS:
            raced.append(by_name[name])
        else:
            message = rest[0] if rest and rest[0] else ""
            reason = for_code(code).__name__ + (f": {message}" if message else "")
            failures.setdefault(reason, []).append(name)
    if failures:
        reasons = "; ".join(f"{', '.join(names)}: {reason}" for reason, names in failures.items())
        done = f" (created meanwhile: {', '.join(created)})" if created and not validate_only else ""
        raise TopicProvisioningError(f"cannot create topics {reasons}{done}")
    order = {spec.name: i for i, spec in enumerate(missing)}
    created.sort(key=order.__getitem__)
    raced.sort(key=lambda spec: order[spec.name])
    return created, raced


async def _check_existing(admin: Any, settings: KafkaSettings, specs: Sequence[TopicSpec]) -> None:
    """Raise if an existing co-partitioned topic has a different partition count than the
    settings, or an existing compacted topic is not compacted."""
    if not specs:
        return
    counts = await _partition_counts(admin, [spec.name for spec in specs])
    wrong = [(spec.name, counts[spec.name]) for spec in specs
             if spec.co_partitioned and counts[spec.name] != settings.partitions]
    if wrong:
        listed = ", ".join(f"{name} has {count}" for name, count in wrong)
        # If the existing co-partitioned topics agree with each other, the settings are what is off.
        agreed = {counts[spec.name] for spec in specs if spec.co_partitioned}
        hint = (f"set partitions to {agreed.pop()} (--partitions / BATON_PARTITIONS) to match them"
                if len(agreed) == 1 else
                "recreate the odd ones out with the same count (their records are lost)")
        raise TopicProvisioningError(
            f"partition count mismatch: {listed}, expected {settings.partitions}; the orchestrator's "
            f"input topics and the state topic are co-partitioned by execution id and must all have "
            f"the same count: {hint}")
    policies = await _cleanup_policies(admin, [spec.name for spec in specs if spec.compacted])
    not_compacted = [f"{name} (cleanup.policy={policy})" for name, policy in policies.items()
                     if "compact" not in policy.split(",")]
    if not_compacted:
        raise TopicProvisioningError(
            f"topic {', '.join(not_compacted)} must have cleanup.policy=compact: it is a keyed "
            "changelog, and retention would delete the latest record of old keys")


async def _partition_counts(admin: Any, names: list[str]) -> dict[str, int]:
    """Partition count per topic, waiting briefly for metadata of just-created topics."""
    pending = list(names)
    counts: dict[str, int] = {}
    for _ in range(_METADATA_ATTEMPTS):
        retry: list[str] = []
        for topic in await admin.describe_topics(pending):
            code = topic["error_code"]
            if code in _RETRIABLE_METADATA or (code == 0 and not topic["partitions"]):
                retry.append(topic["topic"])
            elif code != 0:
                raise TopicProvisioningError(
                    f"cannot describe topic {topic['topic']}: {for_code(code).__name__}")
            else:
                counts[topic["topic"]] = len(topic["partitions"])
        pending = [name for name in pending if name not in counts]
        if not pending:
            return counts
        await asyncio.sleep(_METADATA_BACKOFF_S)
    raise TopicProvisioningError(f"no metadata for topics {', '.join(pending)} (is the cluster healthy?)")


async def _cleanup_policies(admin: Any, names: list[str]) -> dict[str, str]:
    values, refused = await _topic_config(admin, names, "cleanup.policy")
    if refused:
        name, reason = next(iter(refused.items()))
        raise TopicProvisioningError(f"cannot describe the configs of topic {name}: {reason}")
    return values


async def _topic_config(admin: Any, names: list[str], key: str) -> tuple[dict[str, str], dict[str, str]]:
    """One config of each topic ({topic: value}), and the topics whose configs the brokers would
    not describe ({topic: why}: no DescribeConfigs ACL, unknown topic)."""
    if not names:
        return {}, {}
    responses = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name, {key: None}) for name in names])
    values: dict[str, str] = {}
    refused: dict[str, str] = {}
    for response in responses:
        for resource in response.to_object()["resources"]:
            name = resource["resource_name"]
            if resource["error_code"]:
                refused[name] = f"{for_code(resource['error_code']).__name__} {resource['error_message'] or ''}".rstrip()
                continue
            for entry in resource["config_entries"]:
                if entry["config_names"] == key:
                    values[name] = entry["config_value"] or ""
    return values, refused


def _describe(exc: BaseException) -> str:
    # aiokafka's messages often start with the class name already.
    name, text = type(exc).__name__, str(exc)
    return text if text.startswith(name) else f"{name}: {text}" if text else name


async def delete_topics(settings: KafkaSettings) -> list[str]:
    """Delete every topic of the settings' prefix (`<prefix>.*`), best effort; the names deleted.

    For throwaway deployments (tests, benchmarks): a broker that keeps every run's topics slows
    down, thousands of partitions on one node."""
    admin = new_admin(settings, request_timeout_ms=10_000)
    ours: list[str] = []
    try:
        await admin.start()
        ours = [name for name in await admin.list_topics() if name.startswith(settings.topic_prefix + ".")]
        if ours:
            await admin.delete_topics(ours)
    except (KafkaError, OSError):
        pass  # a leftover topic is harmless to correctness
    finally:
        await admin.close()
    return ours


# Kafka's default max.message.bytes (message.max.bytes of a broker left as shipped).
KAFKA_DEFAULT_MAX_MESSAGE_BYTES = 1_048_588


async def record_limits(settings: KafkaSettings, names: Iterable[str]) -> dict[str, int]:
    """Each topic's max.message.bytes, as the brokers report it (a topic's own setting, or the
    broker default it inherits). A topic whose configs this principal may not describe (no
    DescribeConfigs ACL), or that does not exist, is left out: the caller assumes Kafka's default."""
    admin = new_admin(settings, request_timeout_ms=_REQUEST_TIMEOUT_MS)
    try:
        await admin.start()
        values, _ = await _topic_config(admin, list(names), "max.message.bytes")
    except (KafkaError, OSError):
        return {}  # unreachable: the defaults stand (the caller logs which)
    finally:
        await admin.close()
    return {name: int(value) for name, value in values.items() if value.isdigit()}


async def cluster_id(settings: KafkaSettings) -> str:
    """The Kafka cluster's id (empty when it cannot be read): the orchestrator's state stores
    record it, so a store copied from another cluster is never taken for this one's."""
    admin = new_admin(settings, request_timeout_ms=_REQUEST_TIMEOUT_MS)
    try:
        await admin.start()
        return str((await admin.describe_cluster()).get("cluster_id") or "")
    except (KafkaError, OSError):
        return ""
    finally:
        await admin.close()

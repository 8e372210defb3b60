"""Who may do what on the secured broker: one Role per Baton principal (a SCRAM user, or a client
certificate CN=<user>) with least-privilege grants, and the ``kafka-acls`` argument lists that
grant them. Pure data: applying them is infra/secure_kafka_setup.py's ``apply_acls``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from schemas.topics import STEP_SERVICES, Topics

ADMIN_USER = "baton-admin"


@dataclass(frozen=True)
class Role:
    """One Baton principal (a SCRAM user) and what it may do; the ACL table of docs/security.md.

    ``reads``/``writes`` are literal topic names; ``groups`` literal consumer groups;
    ``transactional_ids`` prefixes of transactional ids (an instance id completes them).
    Read and Write imply Describe, and Write on a topic covers an idempotent producer
    (no cluster IdempotentWrite needed since Kafka 3.0, KIP-679).
    """

    user: str
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    transactional_ids: tuple[str, ...] = ()
    # Topics whose configs it reads: the orchestrator reads each output topic's max.message.bytes
    # so every record it writes fits (DescribeConfigs; Read/Write do not imply it).
    describe_configs: tuple[str, ...] = ()


def baton_roles(prefix: str = "baton", services: Sequence[str] = STEP_SERVICES) -> list[Role]:
    """Least privilege per service, for topic prefix ``prefix`` and default group/transaction ids."""
    t = Topics(prefix)
    readers = (t.state, t.history, t.events, t.review_requests, t.streams, t.statemachines)
    roles = [
        # Consumes its inputs in a group and restores from the state topic; produces everything an
        # execution emits in one transaction per batch (transactional id <group>-<instance id>).
        Role("baton-orchestrator",
             reads=(t.start, t.results, t.review_decisions, t.state, t.statemachines),
             writes=(t.history, t.events, t.state, t.dlq, *(t.commands(s) for s in services)),
             groups=(f"{prefix}-orchestrator",),
             transactional_ids=(f"{prefix}-orchestrator-",),
             describe_configs=(t.history, t.events, t.state, t.dlq, *(t.commands(s) for s in services))),
        # Starts, stops and redrives executions, posts review decisions; reads with assigned
        # partitions (no group).
        Role("baton-api", reads=readers, writes=(t.start, t.review_decisions)),
        # What the API does, plus `baton deploy`/`alias`: transactional writes to the registry.
        Role("baton-cli", reads=readers, writes=(t.start, t.review_decisions, t.statemachines),
             transactional_ids=(f"{prefix}.registry.",)),
    ]
    extra = {"llm": (t.streams,), "review": (t.review_requests,)}
    for service in services:
        roles.append(Role(f"baton-step-{service}", reads=(t.commands(service),),
                          writes=(t.results, t.dlq, *extra.get(service, ())),
                          groups=(f"{prefix}-step-{service}",)))
    return roles


def acl_tool_arguments(roles: Sequence[Role]) -> list[list[str]]:
    """``kafka-acls --add`` argument lists granting ``roles``: per user a Read run (topics and
    groups), a Write run (topics) and a prefixed Write run (transactional ids); users with
    identical grants share a run."""
    grants: dict[tuple[str, ...], list[str]] = {}
    for role in roles:
        wanted = [
            ("--operation", "Read", *_each("--topic", role.reads), *_each("--group", role.groups)),
            ("--operation", "Write", *_each("--topic", role.writes)),
            ("--operation", "Write", *_each("--transactional-id", role.transactional_ids),
             "--resource-pattern-type", "prefixed"),
            ("--operation", "DescribeConfigs", *_each("--topic", role.describe_configs)),
        ]
        for grant in wanted:
            if any(flag in grant for flag in ("--topic", "--group", "--transactional-id")):
                grants.setdefault(grant, []).append(role.user)
    return [["--add", *_each("--allow-principal", [f"User:{user}" for user in users]), *grant]
            for grant, users in grants.items()]


def _each(flag: str, values: Sequence[str]) -> tuple[str, ...]:
    return tuple(part for value in values for part in (flag, value))


def users() -> list[str]:
    """Every SCRAM user of the secured broker: the admin (a super user) and one per role."""
    return [ADMIN_USER, *(role.user for role in baton_roles())]

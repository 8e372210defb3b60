"""Baton on a secured broker (infra/secure_kafka.py): SASL/SCRAM-SHA-512 over TLS or mutual TLS, and
the ACLs of docs/security.md enforced by Kafka's StandardAuthorizer.

The orchestrator, the fn step service and a client each log in as their own SCRAM user and run an
execution end to end with only their ACLs, and again with the fn service authenticated by its
client certificate only; clients without (valid) credentials or certificates are refused, and a
user (by password or certificate) is refused what its ACLs do not grant.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
)
from aiokafka.structs import TopicPartition

from infra.local_kafka import LocalKafkaError
from infra.secure_kafka import (
    ADMIN_USER,
    SecureBroker,
    baton_roles,
    ensure_up,
    issue_client_certificates,
    new_ca,
    stop,
    users,
)
from kafka_io import KafkaSettings
from orchestrator.registry.writer import RegistryWriter
from orchestrator.runtime.service import Orchestrator
from orchestrator.runtime.topics import provision_topics
from orchestrator.settings import OrchestratorSettings
from schemas.base import decode, encode
from schemas.dlq import DeadLetter
from schemas.executions import ExecutionStatus, HistoryRecord, StartExecution, execution_id_for
from schemas.review import ReviewDecision
from schemas.steps import StepCommand, StepResult
from steps.fn.service import fn_service
from tests.integration.runtime_support import TERMINAL, read_all
from tests.integration.secure_support import free_ports

STEPS = "tests.integration.steps_for_tests"
PREFIX = "baton"  # the secured broker is this module's own: the default prefix its ACLs name
REFUSAL_TIMEOUT_MS = 5_000

SEQUENCE = {"StartAt": "Prepare", "States": {
    "Prepare": {"Type": "Pass", "Result": {"a": 2, "b": 3}, "ResultPath": "$.pair", "Next": "Add"},
    "Add": {"Type": "Task", "Resource": "baton:fn:add", "InputPath": "$.pair", "ResultPath": "$.sum",
            "Next": "Echo"},
    "Echo": {"Type": "Task", "Resource": "baton:fn:echo", "ResultSelector": {"total.$": "$.sum.sum"},
             "End": True}}}


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    """A fresh secured broker (own state folder and ports) with Baton's topics and ACLs."""
    port, controller_port, mtls_port = free_ports(3)
    try:
        broker = ensure_up(port, controller_port, state=tmp_path_factory.mktemp("kafka-secure"),
                           mtls_port=mtls_port, prefix=PREFIX)
    except LocalKafkaError as error:
        pytest.fail(f"secured Kafka did not start: {error}\n{error.log_tail}", pytrace=False)
    try:
        asyncio.run(provision_topics(settings_for(broker, ADMIN_USER)))
        yield broker
    finally:
        stop(broker)


def settings_for(broker: SecureBroker, user: str | None, *, mtls: bool = False, **changes: Any) -> KafkaSettings:
    """A user's client settings, exactly as `python -m infra.secure_kafka env [--mtls]` prints them."""
    env = {key.removeprefix("BATON_").lower(): value
           for key, value in broker.client_env(user, mtls=mtls).items()}
    # Explicit Nones: a BATON_KAFKA_SASL_*/SSL_* in the test's own environment must not log in for it.
    unset = {"kafka_sasl_mechanism": None, "kafka_sasl_username": None, "kafka_sasl_password": None,
             "kafka_sasl_password_file": None, "kafka_ssl_certfile": None, "kafka_ssl_keyfile": None}
    return KafkaSettings(**{**unset, **env, "topic_prefix": PREFIX, **changes})


@contextlib.asynccontextmanager
async def running(broker: SecureBroker, fn: KafkaSettings) -> AsyncIterator[None]:
    """The orchestrator (logged in as its own user) and the fn step service with ``fn``."""
    stop_event = asyncio.Event()
    orchestrator = Orchestrator(settings_for(broker, "baton-orchestrator"),
                                OrchestratorSettings(instance_id="secure-1", metrics_port=None))
    task = asyncio.create_task(orchestrator.run(stop_event))
    try:
        async with fn_service([STEPS], settings=fn):
            await asyncio.wait_for(_ready_or_ended(orchestrator, task), 30)
            assert not task.done(), f"the orchestrator stopped: {task.exception()!r}"
            # Its ACLs let it read every output topic's record size (DescribeConfigs): none assumed.
            assert set(orchestrator._record_limits) == set(orchestrator._output_topics())
            yield
    finally:
        stop_event.set()
        await asyncio.wait_for(task, 30)


async def _ready_or_ended(orchestrator: Orchestrator, task: asyncio.Task[None]) -> None:
    """Until the orchestrator is ready, or its task ended (e.g. the broker refused it)."""
    ready = asyncio.create_task(orchestrator.ready.wait())
    try:
        await asyncio.wait([ready, task], return_when=asyncio.FIRST_COMPLETED)
    finally:
        ready.cancel()


async def _terminal_status(settings: KafkaSettings, execution_id: str, timeout: float) -> ExecutionStatus:
    """The execution's terminal status, read from the events topic with assigned partitions (the
    client principal has no consumer group)."""
    deadline = time.monotonic() + timeout
    while True:
        for record in await read_all(settings, settings.topics.events):
            status = decode(ExecutionStatus, record.value)
            if status.execution_id == execution_id and status.status in TERMINAL:
                return status
        assert time.monotonic() < deadline, f"{execution_id} did not finish in {timeout} s"
        await asyncio.sleep(0.3)


@pytest.mark.parametrize("fn_auth", ["scram", "certificate"])
def test_execution_runs_end_to_end_with_least_privilege_users(secure_broker: SecureBroker, fn_auth: str) -> None:
    """The fn service logs in as baton-step-fn by password, or by its certificate alone on the
    mTLS listener (no SASL settings at all); the orchestrator uses SASL_SSL either way."""
    client = settings_for(secure_broker, "baton-cli")
    fn = settings_for(secure_broker, "baton-step-fn", mtls=fn_auth == "certificate")
    if fn_auth == "certificate":
        assert (fn.kafka_security_protocol, fn.kafka_sasl_mechanism, fn.kafka_sasl_username) == ("SSL", None, None)
        assert fn.bootstrap_servers == [secure_broker.layout.mtls_bootstrap] and fn.kafka_ssl_certfile

    async def scenario() -> None:
        # Deployed to the registry (a transactional write) as the CLI user, started by name.
        await RegistryWriter(client).deploy("secure-sequence", SEQUENCE)
        name = uuid.uuid4().hex[:12]
        execution_id = execution_id_for("secure-sequence", name)
        request = StartExecution(execution_id=execution_id, state_machine="secure-sequence", name=name, input={})
        async with running(secure_broker, fn):
            producer = AIOKafkaProducer(**client.client_options(), enable_idempotence=True)
            await producer.start()
            try:
                await producer.send_and_wait(client.topics.start, encode(request), key=execution_id.encode())
            finally:
                await producer.stop()
            status = await _terminal_status(client, execution_id, timeout=40)
        assert (status.status, status.output, status.error) == ("SUCCEEDED", {"total": 5}, None)
        history = [decode(HistoryRecord, r.value) for r in await read_all(client, client.topics.history)]
        kinds = [e["type"] for h in history if h.execution_id == execution_id for e in h.events]
        assert kinds.count("TaskSucceeded") == 2 and kinds[-1] == "ExecutionSucceeded", kinds

    asyncio.run(scenario())


async def _connects(settings: KafkaSettings) -> None:
    """Bootstrap a client (ApiVersions, SASL, Metadata); raises if the broker does not let it in."""
    client = AIOKafkaClient(**settings.client_options(), request_timeout_ms=REFUSAL_TIMEOUT_MS,
                            connections_max_idle_ms=REFUSAL_TIMEOUT_MS)
    try:
        await asyncio.wait_for(client.bootstrap(), REFUSAL_TIMEOUT_MS / 1000 * 2)
    finally:
        await client.close()


# What the broker logs when it refuses each kind of client: the refusal is for the right reason.
REFUSALS = {
    "plaintext": "(SSL handshake failed)",
    "tls-without-sasl": "during SASL handshake",
    "wrong-password": "invalid credentials with SASL mechanism SCRAM-SHA-512",
    "unknown-user": "invalid credentials with SASL mechanism SCRAM-SHA-512",
}


async def _broker_logged(broker: SecureBroker, since: int, *texts: str, timeout: float = 5.0) -> bool:
    """True if one line the broker logged after ``since`` holds all of ``texts``."""
    deadline = time.monotonic() + timeout
    while True:
        with open(broker.layout.paths.server_log, "rb") as log:
            log.seek(since)
            lines = log.read().decode(errors="replace").splitlines()
            if any(all(text in line for text in texts) for line in lines):
                return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_client_without_valid_credentials_is_refused(secure_broker: SecureBroker, case: str) -> None:
    good = settings_for(secure_broker, "baton-api")
    refused = {
        "plaintext": good.model_copy(update={"kafka_security_protocol": "PLAINTEXT", "kafka_sasl_mechanism": None}),
        "tls-without-sasl": settings_for(secure_broker, None),
        "wrong-password": settings_for(secure_broker, "baton-api", kafka_sasl_password="not-the-password",
                                       kafka_sasl_password_file=None),
        "unknown-user": settings_for(secure_broker, "baton-api", kafka_sasl_username="mallory"),
    }[case]

    async def scenario() -> None:
        await _connects(good)  # control: the same client with valid credentials gets in
        since = secure_broker.layout.paths.server_log.stat().st_size
        with pytest.raises((KafkaError, OSError, asyncio.TimeoutError)):
            await _connects(refused)
        assert await _broker_logged(secure_broker, since, REFUSALS[case]), REFUSALS[case]

    asyncio.run(scenario())


def _controller_answers(broker: SecureBroker, *, with_broker_certificate: bool) -> bool:
    """True if the controller port answers a Kafka ApiVersions request over TLS."""
    context = ssl.create_default_context(cafile=str(broker.layout.ca_file))
    if with_broker_certificate:
        context.load_cert_chain(broker.layout.broker_pem)
    client_id = b"baton-test"
    request = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id  # ApiVersions v0
    try:
        with socket.create_connection(("127.0.0.1", broker.layout.controller_port), timeout=5) as raw, \
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(struct.pack(">i", len(request)) + request)
            header = tls.recv(8)  # with TLS 1.3 a missing client certificate fails here
    except (OSError, ssl.SSLError):
        return False
    return len(header) == 8 and struct.unpack(">i", header[4:])[0] == 7


def test_controller_listener_takes_only_the_broker_certificate(secure_broker: SecureBroker) -> None:
    assert _controller_answers(secure_broker, with_broker_certificate=True)  # control
    assert not _controller_answers(secure_broker, with_broker_certificate=False)


def test_each_user_sees_exactly_the_topics_of_its_acls(secure_broker: SecureBroker) -> None:
    """Metadata lists only topics a user may describe (Read or Write imply it): the table of
    `baton_roles`, as the broker enforces it, and nothing more."""

    async def scenario() -> None:
        seen = {role.user: await visible(settings_for(secure_broker, role.user)) for role in baton_roles(PREFIX)}
        assert seen == {role.user: {*role.reads, *role.writes} for role in baton_roles(PREFIX)}
        assert seen["baton-step-fn"] == {f"{PREFIX}.steps.fn.commands", f"{PREFIX}.steps.results", f"{PREFIX}.dlq"}
        # Control: the admin (a super user) sees every topic, e.g. the start topic fn cannot.
        assert f"{PREFIX}.executions.start" in await visible(settings_for(secure_broker, ADMIN_USER))

    asyncio.run(scenario())


async def write(settings: KafkaSettings, topic: str, **options: Any) -> None:
    producer = AIOKafkaProducer(**settings.client_options(), request_timeout_ms=REFUSAL_TIMEOUT_MS, **options)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"{}", key=b"k")
    finally:
        await producer.stop()


async def visible(settings: KafkaSettings) -> set[str]:
    """The topics the broker lists to this client: those its principal may describe."""
    consumer = AIOKafkaConsumer(**settings.client_options(), group_id=None)
    await consumer.start()
    try:
        return set(await consumer.topics())
    finally:
        await consumer.stop()


def test_users_are_refused_what_their_acls_do_not_grant(secure_broker: SecureBroker) -> None:
    fn = settings_for(secure_broker, "baton-step-fn")
    api = settings_for(secure_broker, "baton-api")
    topics = fn.topics

    async def read(settings: KafkaSettings, topic: str, group: str | None = None) -> None:
        """Fetch from the topic (assigned partitions), or join ``group`` and be given partitions."""
        consumer = AIOKafkaConsumer(**settings.client_options(), group_id=group, enable_auto_commit=False,
                                    auto_offset_reset="earliest", request_timeout_ms=REFUSAL_TIMEOUT_MS)
        await consumer.start()
        try:
            if group is None:
                consumer.assign([TopicPartition(topic, p) for p in range(settings.partitions)])
                await consumer.getmany(timeout_ms=REFUSAL_TIMEOUT_MS)
                return
            consumer.subscribe([topic])
            deadline = time.monotonic() + REFUSAL_TIMEOUT_MS / 1000
            while not consumer.assignment():  # joined; a refusal raises from getmany
                assert time.monotonic() < deadline, f"{group} was neither joined nor refused"
                await consumer.getmany(timeout_ms=200)
        finally:
            await consumer.stop()

    async def scenario() -> None:
        # Controls: what the fn service's ACLs grant works.
        await write(fn, topics.results)
        await read(fn, topics.commands("fn"), group=f"{PREFIX}-step-fn")
        with pytest.raises(TopicAuthorizationFailedError):
            await write(fn, topics.state)  # only the orchestrator writes execution state
        with pytest.raises(TopicAuthorizationFailedError):
            await read(fn, topics.results)  # it writes results (so may describe them), never reads them
        with pytest.raises(GroupAuthorizationFailedError):
            await read(fn, topics.commands("fn"), group=f"{PREFIX}-orchestrator")
        with pytest.raises(TopicAuthorizationFailedError):
            await write(api, topics.statemachines)  # the API does not deploy
        with pytest.raises(TransactionalIdAuthorizationFailed):
            await write(api, topics.start, transactional_id=f"{PREFIX}-orchestrator-secure-1")

    asyncio.run(scenario())


def test_state_folder_holds_no_password_for_others(secure_broker: SecureBroker) -> None:
    """The users' passwords, the broker's key and the admin config are readable by their owner
    only (the throwaway CA's key is not kept at all)."""
    state = secure_broker.layout.paths.state
    private = [secure_broker.layout.users_file, secure_broker.layout.broker_pem,
               secure_broker.layout.admin_properties, secure_broker.layout.paths.properties,
               *secure_broker.layout.clients.glob("*-key.pem"), *secure_broker.layout.secrets.glob("*")]
    assert len(private) == 4 + len(baton_roles()) + len(users()), "a client key and a password file per user"
    assert secure_broker.layout.secrets.stat().st_mode & 0o077 == 0
    assert {path.name: path.stat().st_mode & 0o077 for path in private} == {path.name: 0 for path in private}
    assert not [p for p in Path(state).rglob("*.key")], "no stray key files"
    assert not [p for p in Path(state).rglob("ca-key.pem")], "the CA key is not kept"


# --------------------------------------------------------------------------- mutual TLS


@pytest.fixture(scope="module")
def foreign_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(certificate, key) for CN=baton-step-fn from another CA: the right name, the wrong issuer."""
    folder = tmp_path_factory.mktemp("foreign-ca")
    ca_pem, ca_key = new_ca(folder, "Another CA")
    issue_client_certificates(ca_pem, ca_key, ["baton-step-fn"], folder)
    return folder / "baton-step-fn-cert.pem", folder / "baton-step-fn-key.pem"


@pytest.mark.parametrize("case", ["no-certificate", "foreign-ca"])
def test_mtls_listener_refuses_clients_without_a_certificate_of_our_ca(
        secure_broker: SecureBroker, foreign_certificate: tuple[Path, Path], case: str) -> None:
    good = settings_for(secure_broker, "baton-step-fn", mtls=True)
    cert, key = foreign_certificate
    refused = {
        "no-certificate": settings_for(secure_broker, None, mtls=True),
        "foreign-ca": good.model_copy(update={"kafka_ssl_certfile": str(cert), "kafka_ssl_keyfile": str(key)}),
    }[case]
    assert refused.kafka_security_protocol == "SSL" and refused.bootstrap_servers == good.bootstrap_servers
    # The refusal is the mTLS listener's: Kafka's channel ids start with the local address.
    refusal = f"(channelId={secure_broker.layout.mtls_bootstrap}-"

    async def scenario() -> None:
        await _connects(good)  # control: the same client with our CA's certificate gets in
        since = secure_broker.layout.paths.server_log.stat().st_size
        with pytest.raises((KafkaError, OSError, asyncio.TimeoutError)):
            await _connects(refused)
        assert await _broker_logged(secure_broker, since, refusal, "(SSL handshake failed)"), refusal

    asyncio.run(scenario())


def test_certificate_principal_is_subject_to_acls(secure_broker: SecureBroker) -> None:
    """CN=baton-step-fn is User:baton-step-fn on the mTLS listener: that user's ACLs, no more."""
    fn = settings_for(secure_broker, "baton-step-fn", mtls=True)
    roles = {role.user: role for role in baton_roles(PREFIX)}
    # The broker's own certificate maps to User:baton-broker there, which no ACL names: it is a
    # super user only as User:CN=baton-broker on the controller listener.
    broker_cert = fn.model_copy(update={"kafka_ssl_certfile": str(secure_broker.layout.broker_pem),
                                        "kafka_ssl_keyfile": None})

    async def scenario() -> None:
        assert await visible(fn) == {*roles["baton-step-fn"].reads, *roles["baton-step-fn"].writes}
        await write(fn, fn.topics.results)  # control: granted to baton-step-fn
        with pytest.raises(TopicAuthorizationFailedError):
            await write(fn, fn.topics.state)  # only the orchestrator writes execution state
        assert await visible(broker_cert) == set()

    asyncio.run(scenario())


# ---------------------------------------------------------------- trust between services

AWAITING = {"StartAt": "Approve", "States": {
    "Approve": {"Type": "Task", "Resource": "baton:review.waitForTaskToken",
                "Parameters": {"refund": 500, "TaskToken.$": "$$.Task.Token"}, "Next": "PayOut"},
    "PayOut": {"Type": "Pass", "End": True}}}
DRAFTING = {"StartAt": "Draft", "States": {
    "Draft": {"Type": "Task", "Resource": "baton:llm", "Parameters": {"Prompt": "hi"}, "End": True}}}


async def _command_for(admin: KafkaSettings, service: str, execution_id: str, timeout: float = 20) -> StepCommand:
    """The step command an execution was sent, as the service it went to reads it."""
    deadline = time.monotonic() + timeout
    while True:
        for record in await read_all(admin, admin.topics.commands(service)):
            command = decode(StepCommand, record.value)
            if command.execution_id == execution_id:
                return command
        assert time.monotonic() < deadline, f"no {service} command for {execution_id}"
        await asyncio.sleep(0.3)


async def _publish(settings: KafkaSettings, topic: str, value: bytes, key: str) -> None:
    producer = AIOKafkaProducer(**settings.client_options(), enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key.encode())
    finally:
        await producer.stop()


async def _reasons(admin: KafkaSettings, execution_id: str, count: int, timeout: float = 20) -> list[str]:
    """The reasons of the first ``count`` dead letters about an execution."""
    deadline = time.monotonic() + timeout
    while True:
        letters = [decode(DeadLetter, r.value) for r in await read_all(admin, admin.topics.dlq)]
        reasons = [d.reason for d in letters if d.execution_id == execution_id]
        if len(reasons) >= count or time.monotonic() > deadline:
            return reasons
        await asyncio.sleep(0.3)


async def _event_types(settings: KafkaSettings, execution_id: str) -> list[str]:
    history = [decode(HistoryRecord, r.value) for r in await read_all(settings, settings.topics.history)]
    return [e["type"] for h in history if h.execution_id == execution_id for e in h.events]


def test_a_service_completes_only_the_tasks_it_was_given(secure_broker: SecureBroker) -> None:
    """With the fn service's credentials (which cannot read the review or llm commands), a result
    for a review task and one for an llm task are refused: dead-lettered with the reason, the
    executions unchanged and still waiting. The review service's own result cannot complete its
    callback task either; the legitimate paths (the review decision with the signed task token,
    the llm service's result with its command's key) complete them."""
    admin = settings_for(secure_broker, ADMIN_USER)
    client = settings_for(secure_broker, "baton-cli")
    fn = settings_for(secure_broker, "baton-step-fn")

    async def scenario() -> None:
        name = uuid.uuid4().hex[:10]
        review_id = execution_id_for("refund", name)
        llm_id = execution_id_for("draft", name)
        async with running(secure_broker, fn):
            for execution_id, machine, definition in ((review_id, "refund", AWAITING), (llm_id, "draft", DRAFTING)):
                start = StartExecution(execution_id=execution_id, state_machine=machine, name=name,
                                       definition=definition, input={})
                await _publish(client, client.topics.start, encode(start), execution_id)
            review = await _command_for(admin, "review", review_id)
            draft = await _command_for(admin, "llm", llm_id)
            assert review.result_key and draft.result_key and review.result_key != draft.result_key
            # fn cannot read the commands holding the keys (test_users_are_refused_what_their_acls_do_not_grant):
            # what it forges without them (the task ids are predictable) is refused.
            forged = [
                StepResult(execution_id=review_id, task_id=review.task_id, kind="succeeded", output={"ok": 1}),
                StepResult(execution_id=llm_id, task_id=draft.task_id, kind="succeeded", output={"text": "x"}),
                StepResult(execution_id=llm_id, task_id=draft.task_id, kind="succeeded", output={"text": "x"},
                           result_key=review.result_key),  # another task's key
            ]
            for result in forged:
                await _publish(fn, fn.topics.results, encode(result), result.execution_id)
            # Even the review service's own result (with the right key) cannot approve a review.
            reviewer_result = StepResult(execution_id=review_id, task_id=review.task_id, kind="succeeded",
                                         output={"ok": 2}, result_key=review.result_key)
            await _publish(settings_for(secure_broker, "baton-step-review"), fn.topics.results,
                           encode(reviewer_result), review_id)
            assert sorted(r.split(":")[0] for r in await _reasons(admin, review_id, 2)) == [
                "callback_task_result", "unauthenticated_result"]
            assert [r.split(":")[0] for r in await _reasons(admin, llm_id, 2)] == [
                "unauthenticated_result", "unauthenticated_result"]
            for execution_id in (review_id, llm_id):
                types = await _event_types(client, execution_id)
                assert "TaskSucceeded" not in types and types[-1] == "TaskStarted", types
            # The legitimate paths: the decision with the signed token, the llm service's result.
            assert review.task_token is not None
            decision = ReviewDecision(execution_id=review_id, task_token=review.task_token, outcome="success",
                                      output={"approved": True})
            await _publish(settings_for(secure_broker, "baton-api"), client.topics.review_decisions,
                           encode(decision), review_id)
            answer = StepResult(execution_id=llm_id, task_id=draft.task_id, kind="succeeded",
                                output={"text": "real"}, result_key=draft.result_key)
            await _publish(settings_for(secure_broker, "baton-step-llm"), client.topics.results,
                           encode(answer), llm_id)
            approved = await _terminal_status(client, review_id, timeout=30)
            drafted = await _terminal_status(client, llm_id, timeout=30)
        assert (approved.status, approved.output) == ("SUCCEEDED", {"approved": True})
        assert (drafted.status, drafted.output) == ("SUCCEEDED", {"text": "real"})

    asyncio.run(scenario())


"""Kafka failures as one line with the fix: the one place every command and service asks.

aiokafka turns a refused login, an untrusted certificate and a port that wants TLS alike into
"Unable to bootstrap from [...]" (the reason, if it knew one, went to its log). :func:`explain`
turns an exception raised by aiokafka or ``ssl`` into a line that says what is wrong and which
setting fixes it: authentication failed (for which user), the broker's certificate is not trusted
(which certificate, which CA file), the port expects TLS or does not speak it, it wants a client
certificate or a SASL login, a mechanism it does not enable, an ACL that does not grant. When the
exception itself does not say, and no event loop runs in this thread (a command that has finished
its asyncio.run, a service before it starts), it asks the broker with :func:`diagnose`: a raw
probe (kafka_io.probe) and a real login whose aiokafka log records are caught instead
of printed. Invalid settings (a username without a password, an unknown mechanism) never get this
far: KafkaSettings refuses them when it loads, and :func:`settings_problem` makes that one line.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    GroupCoordinatorNotAvailableError,
    IllegalSaslStateError,
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
    UnsupportedSaslMechanismError,
)
from pydantic import ValidationError

from kafka_io.probe import probe
from kafka_io.settings import KafkaSettings

DIAGNOSE_TIMEOUT_SECONDS = 5.0
COORDINATOR_GRACE_SECONDS = 30.0
# What an ACL refusal was about, by the error Kafka answered.
_GRANTS: tuple[tuple[type[KafkaError], str], ...] = (
    (TopicAuthorizationFailedError, "a topic"), (GroupAuthorizationFailedError, "a consumer group"),
    (TransactionalIdAuthorizationFailed, "a transactional id"), (ClusterAuthorizationFailedError, "a cluster operation"))
_AUTHORIZATION = tuple(kind for kind, _ in _GRANTS)
# What a refused or broken connection raises; anything else (a fenced producer, a missing topic)
# is a failure of its own, which the caller's message already describes.
_CONNECTION_FAILURES = (KafkaConnectionError, SaslAuthenticationFailed, UnsupportedSaslMechanismError,
                        IllegalSaslStateError, ssl.SSLError, ConnectionError, *_AUTHORIZATION)


def settings_problem(exc: ValidationError) -> str:
    """One line for invalid BATON_* Kafka settings. The inputs are never shown: one is the password."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False, include_context=False):
        message = error["msg"].removeprefix("Value error, ")
        if error["loc"] and not message.startswith("BATON_"):
            message = f"BATON_{'_'.join(map(str, error['loc'])).upper()}: {message}"
        problems.append(message)
    return "invalid Kafka settings: " + "; ".join(problems)


def connection_failure(exc: BaseException) -> BaseException | None:
    """The refused or broken Kafka connection behind ``exc`` (itself, or what it was raised from)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, _CONNECTION_FAILURES):
            found: BaseException = current  # (aiokafka's error classes are untyped)
            return found
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def explain(exc: BaseException, settings: KafkaSettings, *, probe_broker: bool = True) -> str:
    """One line saying why talking to Kafka failed with ``exc``, and how to fix it.

    ``probe_broker``: when the exception does not say why, ask the broker (blocking, at most a few
    seconds); never done while an event loop runs in this thread.

    Callers report the line and exit, so asyncio's "Unclosed AIOKafkaConsumer" reports of the
    clients the failed call never got to start (collected at exit, after the line) are dropped.
    """
    _quiet_unclosed_clients()
    failure = connection_failure(exc) or exc
    known = describe(failure, settings)
    if known:
        return known
    if probe_broker and isinstance(failure, _CONNECTION_FAILURES) and not _loop_running():
        found = diagnose(settings)
        if found:
            return found
    if isinstance(failure, KafkaConnectionError):
        return (f"cannot reach Kafka at {settings.kafka_bootstrap}: is the broker running and the "
                "address right?")
    return f"Kafka at {settings.kafka_bootstrap} failed: {failure or type(failure).__name__}"


def explain_wrapped(exc: BaseException, settings: KafkaSettings) -> str:
    """:func:`explain` if ``exc`` comes from a refused or broken connection, else its own message."""
    _quiet_unclosed_clients()  # a missing topic too leaves clients the failed call never closed
    return explain(exc, settings) if connection_failure(exc) is not None else str(exc)


def describe(exc: BaseException, settings: KafkaSettings) -> str | None:
    """The line for an exception that says by itself what went wrong; None for a generic one."""
    where = settings.kafka_bootstrap
    if isinstance(exc, SaslAuthenticationFailed):
        return (f"Kafka at {where} refused the login of user {settings.kafka_sasl_username!r} "
                f"({settings.kafka_sasl_mechanism}): wrong password, or no such user; check "
                "BATON_KAFKA_SASL_USERNAME and BATON_KAFKA_SASL_PASSWORD_FILE (or _PASSWORD)")
    if isinstance(exc, UnsupportedSaslMechanismError):
        return (f"Kafka at {where} does not enable SASL mechanism {settings.kafka_sasl_mechanism}: "
                f"set BATON_KAFKA_SASL_MECHANISM to one it enables ({exc})")
    if isinstance(exc, IllegalSaslStateError):
        return (f"Kafka at {where} takes no SASL login there: set BATON_KAFKA_SECURITY_PROTOCOL to SSL or "
                "PLAINTEXT without BATON_KAFKA_SASL_*, or use the broker's SASL port")
    if isinstance(exc, ssl.SSLCertVerificationError):
        trust = settings.kafka_ssl_cafile or "the system's CA certificates"
        return (f"TLS: the broker's certificate at {where} is not trusted by {trust}: {exc.verify_message}; "
                "set BATON_KAFKA_SSL_CAFILE to the CA that signed it")
    if isinstance(exc, _AUTHORIZATION):
        what = next(name for kind, name in _GRANTS if isinstance(exc, kind))
        return (f"Kafka at {where} refused {_principal(settings)} access to {what} its ACLs do not grant "
                f"({exc}); see the ACL table in docs/security.md")
    if isinstance(exc, ConnectionRefusedError):
        return f"cannot reach Kafka at {where}: connection refused (is the broker running and the address right?)"
    return None


def diagnose(settings: KafkaSettings, timeout: float = DIAGNOSE_TIMEOUT_SECONDS) -> str | None:
    """Why a client with ``settings`` cannot get into the cluster; None if it gets in.

    Blocking (it runs its own event loop): for a command after its failure, or a service before
    it starts, so its first words are the reason rather than a traceback. Probes every bootstrap
    address; if one lets the client's transport and mechanism through, logs in for real there.
    """
    problems = [probe(settings, address, timeout) for address in settings.bootstrap_servers]
    if problems and all(problems):
        first = problems[0]
        return first if len(problems) == 1 else f"{first} (and every other bootstrap address fails too)"
    for error in _login_errors(settings, timeout):
        message = describe(error, settings)
        if message:
            return message
    return None


def _login_errors(settings: KafkaSettings, timeout: float) -> list[BaseException]:
    """What a real bootstrap raised or logged (aiokafka logs the reason and raises a generic
    error); empty if it got in."""

    async def bootstrap() -> None:
        client = AIOKafkaClient(**settings.client_options(), request_timeout_ms=int(timeout * 1000))
        try:
            await asyncio.wait_for(client.bootstrap(), timeout * 2)
        finally:
            await client.close()

    with _aiokafka_errors() as errors:
        try:
            asyncio.run(bootstrap())
        except (KafkaError, OSError, TimeoutError) as exc:
            errors.append(exc)
    return errors


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.errors: list[BaseException] = []

    def emit(self, record: logging.LogRecord) -> None:
        # aiokafka logs 'Unable connect to "%s:%s": %s' with the exception as the last argument.
        args = record.args if isinstance(record.args, tuple) else ()
        self.errors.extend(arg for arg in args if isinstance(arg, BaseException))


@contextmanager
def _aiokafka_errors() -> Iterator[list[BaseException]]:
    """The exceptions aiokafka logs meanwhile, kept from the terminal (the caller reports them)."""
    logger = logging.getLogger("aiokafka")
    collect = _Collect()
    saved = logger.level, logger.propagate
    logger.addHandler(collect)
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    try:
        yield collect.errors
    finally:
        logger.removeHandler(collect)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


class _UnclosedClientNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Unclosed AIOKafka")


def _quiet_unclosed_clients() -> None:
    logger = logging.getLogger("asyncio")
    if not any(isinstance(f, _UnclosedClientNoise) for f in logger.filters):
        logger.addFilter(_UnclosedClientNoise())


class _CoordinatorStartup(logging.Filter):
    """A consumer group's first join waits for Kafka to elect its coordinator (on a fresh broker,
    to create __consumer_offsets); aiokafka logs every lookup meanwhile at ERROR, and the first
    coordinator it finds "dead" at WARNING, and retries. Such records are lowered to DEBUG for the
    first `grace` seconds of a run of lookups (or of the process): a coordinator still missing after
    that is a real failure and is logged as ERROR again."""

    def __init__(self, grace: float) -> None:
        super().__init__()
        self.grace = grace
        self.installed = time.monotonic()
        self.first = self.last = float("-inf")

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        now = time.monotonic()
        if any(isinstance(arg, GroupCoordinatorNotAvailableError) for arg in args):
            if now - self.last > self.grace:  # a new run of lookups (a start, a broker restart)
                self.first = now
            self.last = now
            transient = now - self.first <= self.grace
        elif str(record.msg).startswith("Marking the coordinator dead"):
            transient = now - self.installed <= self.grace or now - self.last <= self.grace
        else:
            return True
        if not transient:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def quiet_transient_kafka_errors(grace: float = COORDINATOR_GRACE_SECONDS) -> None:
    """Keep the transient "group coordinator not available" records of a starting client below
    WARNING (see _CoordinatorStartup); idempotent."""
    logger = logging.getLogger("aiokafka.consumer.group_coordinator")
    if not any(isinstance(f, _CoordinatorStartup) for f in logger.filters):
        logger.addFilter(_CoordinatorStartup(grace))


def _principal(settings: KafkaSettings) -> str:
    if settings.kafka_sasl_username:
        return f"user {settings.kafka_sasl_username!r}"
    if settings.kafka_ssl_certfile:
        return f"the certificate {settings.kafka_ssl_certfile}"
    return "this anonymous client"


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


"""No password of the secured broker ever shows in the process list or a child's environment.

Any user on the machine can read every process's command line (``ps``, /proc/<pid>/cmdline), and
the owner can read a process's environment (/proc/<pid>/environ). A sampler thread reads every
process's command line, and the environment of every process this test starts (the Kafka tools,
the broker, a `baton` client), every few milliseconds: during a first secured start
(``kafka-storage format`` creates the SCRAM users, then the ACLs are applied) and while a Baton
client logs in with the settings ``python -m infra.secure_kafka env`` prints (a password *file*).
No user's password turns up in either.

The 3-broker cluster (infra/kafka_cluster.py) is plaintext-only: it has no password or other
secret to leak, so there is nothing to sample there.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from infra.kafka_acls import baton_roles
from infra.secure_kafka import ADMIN_USER, SecureBroker, stop
from tests.integration.secure_support import baton, clean_env, provision_as_admin, start_secure_broker


class ProcessSampler(threading.Thread):
    """Collects every distinct command line on the machine, and every distinct environment of
    the processes descending from ``root``, until stopped."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.cmdlines: set[bytes] = set()
        self.environs: set[bytes] = set()
        self.samples = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            time.sleep(0.002)

    def halt(self) -> None:
        self._halt.set()
        self.join(10)

    def sample(self) -> None:
        children: dict[int, list[int]] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                self.cmdlines.add(Path(f"/proc/{entry.name}/cmdline").read_bytes())
                stat = Path(f"/proc/{entry.name}/stat").read_text()
            except OSError:  # it exited meanwhile
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
        pending = list(children.get(self.root, []))
        while pending:
            pid = pending.pop()
            pending.extend(children.get(pid, []))
            try:
                self.environs.add(Path(f"/proc/{pid}/environ").read_bytes())
            except OSError:
                continue
        self.samples += 1


@dataclass
class SampledStart:
    broker: SecureBroker
    sampler: ProcessSampler


@pytest.fixture(scope="module")
def sampled_start(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SampledStart]:
    """A first start of a fresh secured broker, with the process list sampled all along."""
    sampler = ProcessSampler(os.getpid())
    sampler.start()
    try:
        broker = start_secure_broker(tmp_path_factory.mktemp("kafka-secure"))
    finally:
        sampler.halt()
    try:
        yield SampledStart(broker, sampler)
    finally:
        stop(broker)


def _leaks(blobs: set[bytes], passwords: dict[str, str]) -> list[str]:
    """The users whose password appears in one of ``blobs``."""
    return sorted(user for user, password in passwords.items() if any(password.encode() in blob for blob in blobs))


def test_no_password_in_any_command_line_during_a_first_start(sampled_start: SampledStart) -> None:
    broker, sampler = sampled_start.broker, sampled_start.sampler
    passwords = broker.passwords()
    # One password per principal: the admin and every role (a step service added is a user more).
    assert set(passwords) == {ADMIN_USER, *(role.user for role in baton_roles())}
    assert all(len(password) >= 24 for password in passwords.values())
    # The sampler did watch the window that matters: a Kafka tool (the format creating the SCRAM
    # users, the ACL batch) ran with its main class and arguments in an argfile of the state folder.
    argfile = f"@{broker.layout.paths.state / '.java-args-'}".encode()
    tools = [line for line in sampler.cmdlines if argfile in line]
    assert tools, f"no Kafka tool seen in {sampler.samples} samples"
    assert all(line.rstrip(b"\0").split(b"\0")[-1].startswith(argfile) for line in tools), tools
    assert _leaks(sampler.cmdlines, passwords) == []
    assert sampler.environs, "the broker's and the tools' environments were sampled"
    assert _leaks(sampler.environs, passwords) == []
    assert not list(broker.layout.paths.state.glob(".java-args-*")), "argfiles are removed after use"


def test_clients_get_a_password_file_not_the_password(sampled_start: SampledStart, tmp_path: Path) -> None:
    """`env` hands out BATON_KAFKA_SASL_PASSWORD_FILE (0600); a `baton` command started with it
    logs in, and neither its command line nor its environment holds the password."""
    broker = sampled_start.broker
    passwords = broker.passwords()
    admin = broker.client_env(ADMIN_USER)
    assert "BATON_KAFKA_SASL_PASSWORD" not in admin and not _leaks({str(admin).encode()}, passwords)
    provision_as_admin(broker)

    env = clean_env(**broker.client_env("baton-cli"))
    password_file = Path(env["BATON_KAFKA_SASL_PASSWORD_FILE"])
    assert password_file.read_text().strip() == passwords["baton-cli"]
    assert password_file.stat().st_mode & 0o077 == 0
    sampler = ProcessSampler(os.getpid())
    sampler.start()
    try:
        result = baton(["list", "--db", str(tmp_path / "readmodel.sqlite")], env)
    finally:
        sampler.halt()
    assert result.returncode == 0, result.stderr  # logged in as baton-cli, read the (empty) list
    assert any(b"BATON_KAFKA_SASL_PASSWORD_FILE=" in environ for environ in sampler.environs), "sampled the client"
    assert _leaks(sampler.cmdlines | sampler.environs, passwords) == []

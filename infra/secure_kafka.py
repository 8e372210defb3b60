"""A secured single-node Kafka for Baton: SASL/SCRAM-SHA-512 or mTLS, least-privilege ACLs.

Usage (from the repository root)::

    python -m infra.secure_kafka up                  # start it (or reuse ours), apply the ACLs
    python -m infra.secure_kafka env --user baton-orchestrator   # `export BATON_KAFKA_...` lines
    python -m infra.secure_kafka env --user baton-step-fn --mtls  # the same, by certificate
    python -m infra.secure_kafka status
    python -m infra.secure_kafka down

It runs beside the plain broker of ``infra.local_kafka`` (same jars, own state folder and ports)
and never touches that one. On the first ``up`` it makes a throwaway CA and a broker certificate
for 127.0.0.1/localhost (``openssl``), formats the storage with one SCRAM user per Baton service
(``kafka-storage format --add-scram``) and signs a client certificate (CN=<user>) per Baton
user, and after the start grants each user what :func:`baton_roles` lists, with Kafka's ACL tool
(``kafka-acls``). Clients connect with SASL_SSL to the client listener, or with their certificate
to the mTLS listener, where CN=<user> is the principal User:<user> (the same ACLs apply); the
controller listener takes only the broker's own certificate, so no listener serves anyone
unauthenticated.

No password is ever on a command line or in a child's environment: Kafka's tools get their main
class and arguments (``--add-scram ...password=...``) through an owner-only @argfile
(infra/java_args.py) and the admin login through ``--command-config`` (a 0600 file); each user's
password is also in ``secrets/<user>.password`` (0600), which ``env`` hands out as
BATON_KAFKA_SASL_PASSWORD_FILE.

Environment:
    BATON_SECURE_KAFKA_PORT             SASL_SSL client port (default 19094)
    BATON_SECURE_KAFKA_CONTROLLER_PORT  controller port (default: client port + 1)
    BATON_SECURE_KAFKA_MTLS_PORT        mTLS client port (default: client port + 2)
    BATON_STATE_DIR                     state root; this broker's lives in <root>/kafka-secure
and those of ``infra.local_kafka`` for the jars (BATON_KAFKA_VERSION, BATON_KAFKA_CACHE,
BATON_KAFKA_HEAP).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from infra.broker_process import (
    LocalKafkaError,
    LogMark,
    exited,
    is_our_broker,
    kafka_version,
    read_pid_record,
    recorded_broker,
    spawn_broker,
    terminate,
    wait_ready,
)
from infra.kafka_acls import ADMIN_USER, Role, acl_tool_arguments, baton_roles, users
from infra.kafka_jars import fetch
from infra.kafka_probes import port_accepts
from infra.kafka_tls import CERT_DAYS, issue_client_certificates, new_ca
from infra.processes import run_command, state_lock
from infra.secure_kafka_setup import (
    ACL_BATCH,
    ACL_COMMAND,
    BROKER_CN,
    DEFAULT_PORT,
    SCRAM,
    Layout,
    apply_acls,
    layout,
    prepare_state,
    read_users,
    render_secure_properties,
    tls_answers,
    write_password_files,
)
from schemas.topics import STEP_SERVICES

# The public face: what callers import from here, though most of it lives in the modules above.
__all__ = [
    "ACL_BATCH", "ACL_COMMAND", "ADMIN_USER", "BROKER_CN", "CERT_DAYS", "DEFAULT_PORT", "SCRAM", "Layout",
    "Role", "SecureBroker", "acl_tool_arguments", "apply_acls", "baton_roles", "down", "ensure_up",
    "issue_client_certificates", "layout", "main", "new_ca", "render_secure_properties", "running_broker",
    "stop", "tls_answers", "users", "write_password_files",
]


@dataclass(frozen=True)
class SecureBroker:
    """A ready secured broker; ``started_here`` if :func:`ensure_up` started it."""

    layout: Layout
    started_here: bool
    pid: int

    @property
    def bootstrap(self) -> str:
        return self.layout.bootstrap

    def passwords(self) -> dict[str, str]:
        return read_users(self.layout)

    def client_env(self, user: str | None, *, mtls: bool = False) -> dict[str, str]:
        """The BATON_KAFKA_* settings of a client logging in as ``user`` (None: TLS only), or
        with ``mtls`` authenticated as ``user`` by its certificate on the mTLS listener."""
        if mtls:
            return self.mtls_env(user)
        env = {"BATON_KAFKA_BOOTSTRAP": self.bootstrap,
               "BATON_KAFKA_SECURITY_PROTOCOL": "SASL_SSL" if user else "SSL",
               "BATON_KAFKA_SSL_CAFILE": str(self.layout.ca_file)}
        if user is not None:
            files = write_password_files(self.layout)
            if user not in files:
                raise LocalKafkaError(f"no user {user!r}; users: {', '.join(files)}")
            # The password file, never the password: whoever runs a client with these settings
            # does not put the password in its environment (/proc/<pid>/environ).
            env |= {"BATON_KAFKA_SASL_MECHANISM": SCRAM, "BATON_KAFKA_SASL_USERNAME": user,
                    "BATON_KAFKA_SASL_PASSWORD_FILE": str(files[user])}
        return env

    def mtls_env(self, user: str | None) -> dict[str, str]:
        """The settings of a client on the mTLS listener with ``user``'s certificate (None: none)."""
        env = {"BATON_KAFKA_BOOTSTRAP": self.layout.mtls_bootstrap,
               "BATON_KAFKA_SECURITY_PROTOCOL": "SSL",
               "BATON_KAFKA_SSL_CAFILE": str(self.layout.ca_file)}
        if user is None:
            return env
        cert, key = (self.layout.clients / f"{user}-{kind}.pem" for kind in ("cert", "key"))
        if not (cert.is_file() and key.is_file()):
            # The CA key is not kept, so certificates exist only for the users of the first `up`.
            raise LocalKafkaError(f"no client certificate for {user!r} in {self.layout.clients}; "
                                  f"certificates exist for: {', '.join(role.user for role in baton_roles())} "
                                  "(a state folder made before mTLS has none: `down`, remove it, `up`)")
        return env | {"BATON_KAFKA_SSL_CERTFILE": str(cert), "BATON_KAFKA_SSL_KEYFILE": str(key)}



# --------------------------------------------------------------------------- up / down


def ensure_up(port: int | None = None, controller_port: int | None = None, *,
              state: Path | None = None, mtls_port: int | None = None, prefix: str = "baton",
              services: Sequence[str] = STEP_SERVICES, timeout: float = 120) -> SecureBroker:
    """Return a ready secured broker with Baton's ACLs for ``prefix``, starting it if needed.

    Reuses only a broker this tool started on the same state folder (it needs that broker's
    passwords); anything else on the ports is an error. Raises :class:`LocalKafkaError`.
    """
    lay = layout(port, controller_port, state, mtls_port)
    with state_lock(lay.paths.state):
        record = recorded_broker(lay.paths)
        if record is not None:
            if record["port"] != lay.port:
                raise LocalKafkaError(f"the secured broker of {lay.paths.state} (pid {record['pid']}) "
                                      f"runs on port {record['port']}, not {lay.port}; run `down` first")
            _wait_ready(lay, record["pid"], timeout, None)
            broker = SecureBroker(lay, started_here=False, pid=record["pid"])
        else:
            for busy in (lay.port, lay.controller_port, lay.mtls_port):
                if port_accepts(busy):
                    raise LocalKafkaError(f"port {busy} is in use; set BATON_SECURE_KAFKA_PORT "
                                          "(and _CONTROLLER_PORT, _MTLS_PORT) to free ones")
            broker = _start(lay, timeout)
        try:
            apply_acls(lay, prefix, services)
        except BaseException:
            if broker.started_here:
                terminate(broker.pid, lay.paths)
                lay.paths.pid_file.unlink(missing_ok=True)
            raise
        return broker


def _start(lay: Layout, timeout: float) -> SecureBroker:
    libs = fetch(lay.paths)
    prepare_state(lay, libs)
    mark = LogMark.now(lay.paths)
    pid = spawn_broker(libs, lay.paths, lay.port)
    _wait_ready(lay, pid, timeout, mark)
    return SecureBroker(lay, started_here=True, pid=pid)


def _wait_ready(lay: Layout, pid: int, timeout: float, mark: LogMark | None) -> None:
    """Until the broker logs that it started (when we started it) and serves TLS."""
    wait_ready(pid, lay.paths, lambda: (mark is None or mark.started()) and tls_answers(lay),
               name="secured Kafka", port=lay.port, timeout=timeout, mark=mark, poll=0.3)


def stop(broker: SecureBroker) -> None:
    """Stop ``broker`` if :func:`ensure_up` started it; otherwise do nothing."""
    if broker.started_here:
        _stop_recorded(broker.layout, broker.pid)


def down(lay: Layout | None = None) -> str:
    """Stop the secured broker recorded in the state folder; return what was done."""
    lay = lay or layout()
    record = read_pid_record(lay.paths)
    if record is None:
        return "no secured broker started by this tool is recorded; nothing to stop"
    if not is_our_broker(record["pid"], lay.paths):
        lay.paths.pid_file.unlink(missing_ok=True)
        return f"pid {record['pid']} is no longer our secured broker; removed the stale pid file"
    return _stop_recorded(lay, record["pid"])


def _stop_recorded(lay: Layout, pid: int) -> str:
    with state_lock(lay.paths.state):
        started = time.monotonic()
        terminate(pid, lay.paths)  # only if pid is still our broker (never a recycled pid)
        if not exited(pid, lay.paths):
            raise LocalKafkaError(f"secured Kafka (pid {pid}) did not exit after SIGKILL")
        record = read_pid_record(lay.paths)
        if record is not None and record["pid"] == pid:
            lay.paths.pid_file.unlink(missing_ok=True)
        return f"stopped secured Kafka (pid {pid}) in {time.monotonic() - started:.1f} s"


def running_broker(lay: Layout | None = None) -> SecureBroker | None:
    """The secured broker recorded in the state folder, if it still runs."""
    lay = lay or layout()
    record = recorded_broker(lay.paths)
    if record is None:
        return None
    # The pid record holds the SASL port only; the others follow it as in `layout` (or their env).
    recorded = layout(record["port"], state=lay.paths.state)
    return SecureBroker(Layout(lay.paths, record["port"], lay.controller_port, recorded.mtls_port),
                        False, record["pid"])


# --------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m infra.secure_kafka", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    up_cmd = commands.add_parser("up", help="start the secured broker (or reuse ours), apply ACLs")
    up_cmd.add_argument("--port", type=int, default=None)
    up_cmd.add_argument("--prefix", default="baton", help="topic prefix the ACLs name")
    up_cmd.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for ready")
    commands.add_parser("down", help="stop the secured broker this tool started")
    commands.add_parser("status", help="up or down (exit 3 if down)")
    env_cmd = commands.add_parser("env", help="print `export BATON_KAFKA_...` for a user (the password "
                                              "as a file: BATON_KAFKA_SASL_PASSWORD_FILE)")
    env_cmd.add_argument("--user", default="baton-cli",
                         help=f"one of {', '.join(users())} (default baton-cli)")
    env_cmd.add_argument("--mtls", action="store_true",
                         help="authenticate by the user's client certificate on the mTLS port "
                              "(every user but the admin has one)")
    return parser


def _run(args: argparse.Namespace) -> int:
    if args.command == "up":
        started = time.monotonic()
        broker = ensure_up(args.port, prefix=args.prefix, timeout=args.timeout)
        how = "started" if broker.started_here else "reused"
        print(f"secured Kafka {kafka_version()} {how} at {broker.bootstrap} (SASL_SSL, {SCRAM}) "
              f"and {broker.layout.mtls_bootstrap} (mTLS; "
              f"pid {broker.pid}, {time.monotonic() - started:.1f} s); users: {', '.join(users())}; "
              f"client settings: python -m infra.secure_kafka env --user USER")
        return 0
    if args.command == "down":
        print(down())
        return 0
    running = running_broker()
    if args.command == "status":
        if running is None or not tls_answers(running.layout):
            print("down: no secured broker started by this tool answers")
            return 3  # LSB: 3 = "program is not running"
        print(f"up: bootstrap {running.bootstrap} (SASL_SSL), {running.layout.mtls_bootstrap} "
              f"(mTLS), pid {running.pid}, "
              f"state {running.layout.paths.state}")
        return 0
    if running is None:
        raise LocalKafkaError("the secured broker is not running; run `up` first")
    for key, value in running.client_env(args.user, mtls=args.mtls).items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m infra.secure_kafka``; returns the exit code."""
    args = _parser().parse_args(argv)
    return run_command("secure_kafka", lambda: _run(args))


if __name__ == "__main__":
    sys.exit(main())

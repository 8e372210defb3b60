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
import base64
import hashlib
import json
import os
import secrets
import shlex
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from infra.local_kafka import (
    HOST,
    READY_LOG_LINE,
    LocalKafkaError,
    Paths,
    _escape_property,
    _exited,
    _is_our_broker,
    _java,
    _java_cmd,
    _LogMark,
    _read_pid_record,
    _recorded_broker,
    _spawn_broker,
    _state_lock,
    _tail_text,
    _terminate,
    default_paths,
    fetch,
    kafka_version,
    port_accepts,
    render_properties,
)
from infra.java_args import NO_PERF_DATA, hidden_arguments
from schemas.topics import STEP_SERVICES, Topics

DEFAULT_PORT = 19094
SCRAM = "SCRAM-SHA-512"
ADMIN_USER = "baton-admin"
BROKER_CN = "baton-broker"  # the broker's certificate: its principal on the controller listener
CERT_DAYS = 30  # throwaway: a fresh state folder makes new ones
TOOL_TIMEOUT_SECONDS = 120
ACL_COMMAND = "org.apache.kafka.tools.AclCommand"  # kafka-acls
ACL_BATCH = Path(__file__).resolve().parent / "kafka" / "AclBatch.java"  # many kafka-acls runs, one JVM


# --------------------------------------------------------------------------- who may do what


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


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class Layout:
    """Where one secured broker keeps its state, and its ports."""

    paths: Paths
    port: int
    controller_port: int
    mtls_port: int

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def mtls_bootstrap(self) -> str:
        return f"{HOST}:{self.mtls_port}"

    @property
    def tls(self) -> Path:
        return self.paths.state / "tls"

    @property
    def ca_file(self) -> Path:
        return self.tls / "ca.pem"

    @property
    def broker_pem(self) -> Path:
        """The broker's private key and certificate chain in one file (a PEM key store)."""
        return self.tls / "broker.pem"

    @property
    def clients(self) -> Path:
        """The users' client certificates (``<user>-cert.pem``) and keys (``<user>-key.pem``)."""
        return self.tls / "clients"

    @property
    def users_file(self) -> Path:
        return self.paths.state / "users.json"

    @property
    def secrets(self) -> Path:
        """One file per user holding its password (``<user>.password``, mode 0600), for
        BATON_KAFKA_SASL_PASSWORD_FILE: a launcher passes the path, never the password."""
        return self.paths.state / "secrets"

    def password_file(self, user: str) -> Path:
        return self.secrets / f"{user}.password"

    @property
    def admin_properties(self) -> Path:
        """Client config of the admin user for Kafka's tools (``--command-config``)."""
        return self.paths.state / "admin.properties"

    @property
    def acl_marker(self) -> Path:
        return self.paths.state / "acls.json"


def layout(port: int | None = None, controller_port: int | None = None,
           state: Path | None = None, mtls_port: int | None = None) -> Layout:
    """The default layout, with ``port``, ``controller_port``, ``state`` or ``mtls_port`` overridden."""
    plain = default_paths()
    port = port if port is not None else int(os.environ.get("BATON_SECURE_KAFKA_PORT", DEFAULT_PORT))
    cport = controller_port if controller_port is not None else int(
        os.environ.get("BATON_SECURE_KAFKA_CONTROLLER_PORT", port + 1))
    mport = mtls_port if mtls_port is not None else int(
        os.environ.get("BATON_SECURE_KAFKA_MTLS_PORT", port + 2))
    state = state.resolve() if state is not None else plain.state.parent / "kafka-secure"
    return Layout(Paths(cache=plain.cache, state=state), port, cport, mport)


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
        return _read_users(self.layout)

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


# --------------------------------------------------------------------------- TLS material


def _make_tls(lay: Layout) -> None:
    """A throwaway CA, and a broker certificate it signs for 127.0.0.1 and localhost.

    The broker uses the certificate on every listener, and as a client certificate on the
    controller listener, hence both serverAuth and clientAuth. Each Baton user (not the admin) gets
    a client certificate CN=<user> for the mTLS listener.
    """
    if lay.ca_file.is_file() and lay.broker_pem.is_file():
        return
    lay.tls.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=lay.tls) as scratch:
        work = Path(scratch)
        ca_pem, ca_key = new_ca(work, "Baton throwaway CA")
        key, cert = _sign(ca_pem, ca_key, BROKER_CN, work, "serverAuth,clientAuth",
                          f"subjectAltName=IP:{HOST},DNS:localhost\n")
        issue_client_certificates(ca_pem, ca_key, [role.user for role in baton_roles()], lay.clients)
        # The CA key is not kept: nothing else is ever signed with it.
        chain = key.read_text() + cert.read_text() + ca_pem.read_text()
        _write_private(lay.broker_pem, chain)
        ca_pem.replace(lay.ca_file)


_EC_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-noenc")


def _openssl_binary() -> str:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise LocalKafkaError("openssl is not on PATH; it makes the secured broker's certificates")
    return openssl


def new_ca(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed CA in ``folder``: (certificate, key) as ``ca.pem`` and ``ca-key.pem``."""
    ca_pem, ca_key = folder / "ca.pem", folder / "ca-key.pem"
    _openssl(_openssl_binary(), "req", "-x509", *_EC_KEY, "-keyout", ca_key, "-out", ca_pem,
             "-days", str(CERT_DAYS), "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return ca_pem, ca_key


def _sign(ca_pem: Path, ca_key: Path, cn: str, folder: Path, usage: str, extra: str = "") -> tuple[Path, Path]:
    """A new key and a certificate CN=``cn`` signed by the CA, in ``folder``: (key, certificate)."""
    openssl = _openssl_binary()
    key, csr, cert, ext = (folder / f"{cn}{suffix}" for suffix in ("-key.pem", ".csr", "-cert.pem", ".cnf"))
    _openssl(openssl, "req", "-new", *_EC_KEY, "-keyout", key, "-out", csr, "-subj", f"/CN={cn}")
    ext.write_text("basicConstraints=critical,CA:FALSE\n"
                   "keyUsage=critical,digitalSignature,keyAgreement\n"
                   f"extendedKeyUsage={usage}\n{extra}"
                   "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n")
    _openssl(openssl, "x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key,
             "-set_serial", f"0x{secrets.token_hex(16)}", "-days", str(CERT_DAYS),
             "-extfile", ext, "-out", cert)
    csr.unlink()
    ext.unlink()
    return key, cert


def issue_client_certificates(ca_pem: Path, ca_key: Path, names: Sequence[str], folder: Path) -> None:
    """Client certificates CN=<name> signed by the CA: ``<name>-cert.pem`` and ``<name>-key.pem``
    (mode 0600) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        key, _ = _sign(ca_pem, ca_key, name, folder, "clientAuth")
        key.chmod(0o600)


def _openssl(openssl: str, *args: str | Path) -> None:
    result = subprocess.run([openssl, *map(str, args)], capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=60)
    if result.returncode != 0:
        raise LocalKafkaError(f"openssl {args[0]} failed (exit {result.returncode})",
                              _tail_text(result.stderr))


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (keys, passwords)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


# --------------------------------------------------------------------------- configuration


def _jaas(user: str, password: str) -> str:
    return (f'org.apache.kafka.common.security.scram.ScramLoginModule required '
            f'username="{user}" password="{password}";')


def render_secure_properties(lay: Layout, admin_password: str) -> str:
    """server.properties: the plain broker's tuning, with secured listeners and an authorizer."""
    settings: dict[str, str] = {}
    for line in render_properties(lay.port, lay.controller_port, lay.paths.data).splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings[key] = value.replace("\\\\", "\\")
    settings |= {
        "listeners": (f"CLIENT://{HOST}:{lay.port},CONTROLLER://{HOST}:{lay.controller_port},"
                      f"MTLS://{HOST}:{lay.mtls_port}"),
        "advertised.listeners": f"CLIENT://{HOST}:{lay.port},MTLS://{HOST}:{lay.mtls_port}",
        "listener.security.protocol.map": "CLIENT:SASL_SSL,CONTROLLER:SSL,MTLS:SSL",
        # Transaction markers go over the inter-broker listener, even to this node itself.
        "inter.broker.listener.name": "CLIENT",
        "sasl.enabled.mechanisms": SCRAM,
        "sasl.mechanism.inter.broker.protocol": SCRAM,
        f"listener.name.client.{SCRAM.lower()}.sasl.jaas.config": _jaas(ADMIN_USER, admin_password),
        # SCRAM credentials live in the metadata the controller serves, so the controller listener
        # cannot use them: it takes the broker's certificate instead (and nothing else).
        "listener.name.controller.ssl.client.auth": "required",
        # mTLS clients: a certificate CN=<user> from our CA is the principal User:<user>, so the
        # SCRAM user's ACLs apply to it. Only on this listener: on the controller the broker stays
        # User:CN=baton-broker (a super user), and here it is a mere User:baton-broker.
        "listener.name.mtls.ssl.client.auth": "required",
        "listener.name.mtls.ssl.principal.mapping.rules": "RULE:^CN=([^,]+)$/$1/,DEFAULT",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(lay.broker_pem),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(lay.ca_file),
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": f"User:{ADMIN_USER};User:CN={BROKER_CN}",
        "allow.everyone.if.no.acl.found": "false",
    }
    lines = ["# Written by infra/secure_kafka.py on every `up`; edits are overwritten."]
    lines += [f"{key}={_escape_property(value)}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def _admin_client_properties(lay: Layout, admin_password: str) -> str:
    settings = {"security.protocol": "SASL_SSL", "sasl.mechanism": SCRAM,
                "sasl.jaas.config": _jaas(ADMIN_USER, admin_password),
                "ssl.truststore.type": "PEM", "ssl.truststore.location": str(lay.ca_file)}
    return "".join(f"{key}={_escape_property(value)}\n" for key, value in settings.items())


def _read_users(lay: Layout) -> dict[str, str]:
    try:
        passwords = json.loads(lay.users_file.read_text())
    except (OSError, ValueError):
        raise LocalKafkaError(f"no user passwords in {lay.users_file}; remove {lay.paths.state} "
                              "and run `up` again to make a fresh secured broker") from None
    return {str(user): str(password) for user, password in passwords.items()}


def write_password_files(lay: Layout) -> dict[str, Path]:
    """Each user's password in its own file (``secrets/<user>.password``, 0600, folder 0700),
    written from users.json where missing or different; returns the files by user."""
    passwords = _read_users(lay)
    lay.secrets.mkdir(mode=0o700, exist_ok=True)
    lay.secrets.chmod(0o700)
    files = {}
    for user, password in passwords.items():
        path = files[user] = lay.password_file(user)
        try:
            current = path.read_text()
        except OSError:
            current = None
        if current != password + "\n":
            _write_private(path, password + "\n")
    return files


def _passwords_for_format(lay: Layout) -> dict[str, str]:
    """The users' passwords: new ones before the first format, the stored ones afterwards."""
    formatted = (lay.paths.data / "meta.properties").is_file()
    if not formatted:
        passwords = {user: secrets.token_urlsafe(24) for user in users()}
        _write_private(lay.users_file, json.dumps(passwords, indent=1) + "\n")
        return passwords
    passwords = _read_users(lay)
    missing = [user for user in users() if user not in passwords]
    if missing:
        # SCRAM users are created at format time only; this state predates these users.
        raise LocalKafkaError(f"the secured broker in {lay.paths.state} has no user(s) "
                              f"{', '.join(missing)}; run `down`, remove that folder, and `up` again")
    return passwords


def _format_storage(libs: Path, lay: Layout, passwords: dict[str, str]) -> None:
    """Format the KRaft log dir once, creating the SCRAM users in the bootstrap metadata."""
    if (lay.paths.data / "meta.properties").is_file():
        return
    scram = [part for user, password in passwords.items()
             for part in ("--add-scram", f"{SCRAM}=[name={user},password={password}]")]
    _tool(libs, lay, "kafka.tools.StorageTool", "format", "-t", _cluster_id(),
          "-c", str(lay.paths.properties), *scram)
    lay.acl_marker.unlink(missing_ok=True)  # a new cluster has no ACLs yet


def _cluster_id() -> str:
    """What `kafka-storage random-uuid` prints (a random UUID, base64url without padding, never
    starting with "-"), without starting a JVM for it."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def _tool(libs: Path, lay: Layout, main_class: str, *args: str, stdin: str | None = None) -> str:
    """Run one of Kafka's command-line tools (or a source file); raise with its output if it fails.

    The main class and its arguments go through an owner-only @argfile (infra/java_args.py), so
    the SCRAM passwords of `format --add-scram` never show in the process list.
    """
    # A short-lived tool needs no optimising compiler; C1 only starts faster on 2 cores.
    cmd = _java_cmd(libs, lay.paths, main_class, *args,
                    jvm_options=("-Xmx256m", "-XX:TieredStopAtLevel=1", NO_PERF_DATA))
    with hidden_arguments(cmd, main_class, lay.paths.state) as launch:
        result = subprocess.run(launch, capture_output=True, text=True, timeout=TOOL_TIMEOUT_SECONDS,
                                input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL)
    if result.returncode != 0:
        name = Path(main_class).stem.rsplit(".", 1)[-1]
        # Never echo the arguments: they may hold passwords.
        what = f"{name} {args[0]}" if args else name
        raise LocalKafkaError(f"{what} failed (exit {result.returncode})",
                              _tail_text(result.stdout + result.stderr))
    return result.stdout


def apply_acls(lay: Layout, prefix: str = "baton", services: Sequence[str] = STEP_SERVICES,
               libs: Path | None = None) -> int:
    """Grant :func:`baton_roles` with ``kafka-acls``, unless exactly these were granted before.

    Adding an ACL that exists is a no-op, so a partly applied set is simply applied again.
    Returns the number of tool runs (0: nothing to do).
    """
    libs = libs or fetch(lay.paths)
    runs = acl_tool_arguments(baton_roles(prefix, services))
    digest = hashlib.sha256(json.dumps(runs).encode()).hexdigest()
    try:
        applied = set(json.loads(lay.acl_marker.read_text()))
    except (OSError, ValueError):
        applied = set()
    if digest in applied:
        return 0
    connect = ["--bootstrap-server", lay.bootstrap, "--command-config", str(lay.admin_properties)]
    if _has_compiler():
        lines = "".join("\t".join([*arguments, *connect]) + "\n" for arguments in runs)
        _tool(libs, lay, str(ACL_BATCH), stdin=lines)
    else:  # a runtime without javac cannot launch a source file: one JVM per run, slower
        for arguments in runs:
            _tool(libs, lay, ACL_COMMAND, *arguments, *connect)
    lay.acl_marker.write_text(json.dumps(sorted(applied | {digest})) + "\n")
    return len(runs)


def _has_compiler() -> bool:
    """True if the JDK can launch a source file (it has javac beside java)."""
    return (Path(_java()).resolve().parent / "javac").is_file()


# --------------------------------------------------------------------------- probes


def tls_answers(lay: Layout, timeout: float = 2.0) -> bool:
    """True if the client port completes a TLS handshake with a certificate from our CA."""
    try:
        context = ssl.create_default_context(cafile=str(lay.ca_file))
        with socket.create_connection((HOST, lay.port), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=HOST):
            return True
    except (OSError, ssl.SSLError):
        return False


# --------------------------------------------------------------------------- up / down


def ensure_up(port: int | None = None, controller_port: int | None = None, *,
              state: Path | None = None, mtls_port: int | None = None, prefix: str = "baton",
              services: Sequence[str] = STEP_SERVICES, timeout: float = 120) -> SecureBroker:
    """Return a ready secured broker with Baton's ACLs for ``prefix``, starting it if needed.

    Reuses only a broker this tool started on the same state folder (it needs that broker's
    passwords); anything else on the ports is an error. Raises :class:`LocalKafkaError`.
    """
    lay = layout(port, controller_port, state, mtls_port)
    with _state_lock(lay.paths):
        record = _recorded_broker(lay.paths)
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
                _terminate(broker.pid, lay.paths)
                lay.paths.pid_file.unlink(missing_ok=True)
            raise
        return broker


def _start(lay: Layout, timeout: float) -> SecureBroker:
    libs = fetch(lay.paths)
    for folder in (lay.paths.data, lay.paths.logs):
        folder.mkdir(parents=True, exist_ok=True)
    _make_tls(lay)
    passwords = _passwords_for_format(lay)
    lay.paths.properties.write_text(render_secure_properties(lay, passwords[ADMIN_USER]))
    lay.paths.properties.chmod(0o600)  # it holds the admin password (inter-broker login)
    _write_private(lay.admin_properties, _admin_client_properties(lay, passwords[ADMIN_USER]))
    write_password_files(lay)
    _format_storage(libs, lay, passwords)
    mark = _LogMark.now(lay.paths)
    pid = _spawn_broker(libs, lay.paths, lay.port)
    _wait_ready(lay, pid, timeout, mark)
    return SecureBroker(lay, started_here=True, pid=pid)


def _wait_ready(lay: Layout, pid: int, timeout: float, mark: _LogMark | None) -> None:
    """Until the broker logs that it started (when we started it) and serves TLS."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _exited(pid, lay.paths):
            lay.paths.pid_file.unlink(missing_ok=True)
            raise LocalKafkaError(f"secured Kafka (pid {pid}) exited during startup; logs in "
                                  f"{lay.paths.logs}", mark.excerpt() if mark else "")
        started = mark is None or READY_LOG_LINE in mark.new_text(lay.paths.server_log)
        if started and tls_answers(lay):
            return
        time.sleep(0.3)
    excerpt = mark.excerpt() if mark else ""
    if mark is not None:
        _terminate(pid, lay.paths)
        lay.paths.pid_file.unlink(missing_ok=True)
    raise LocalKafkaError(f"secured Kafka on port {lay.port} was not ready after {timeout:g} s; "
                          f"logs in {lay.paths.logs}", excerpt)


def stop(broker: SecureBroker) -> None:
    """Stop ``broker`` if :func:`ensure_up` started it; otherwise do nothing."""
    if broker.started_here:
        _stop_recorded(broker.layout, broker.pid)


def down(lay: Layout | None = None) -> str:
    """Stop the secured broker recorded in the state folder; return what was done."""
    lay = lay or layout()
    record = _read_pid_record(lay.paths)
    if record is None:
        return "no secured broker started by this tool is recorded; nothing to stop"
    if not _is_our_broker(record["pid"], lay.paths):
        lay.paths.pid_file.unlink(missing_ok=True)
        return f"pid {record['pid']} is no longer our secured broker; removed the stale pid file"
    return _stop_recorded(lay, record["pid"])


def _stop_recorded(lay: Layout, pid: int) -> str:
    with _state_lock(lay.paths):
        started = time.monotonic()
        _terminate(pid, lay.paths)  # only if pid is still our broker (never a recycled pid)
        if not _exited(pid, lay.paths):
            raise LocalKafkaError(f"secured Kafka (pid {pid}) did not exit after SIGKILL")
        record = _read_pid_record(lay.paths)
        if record is not None and record["pid"] == pid:
            lay.paths.pid_file.unlink(missing_ok=True)
        return f"stopped secured Kafka (pid {pid}) in {time.monotonic() - started:.1f} s"


def running_broker(lay: Layout | None = None) -> SecureBroker | None:
    """The secured broker recorded in the state folder, if it still runs."""
    lay = lay or layout()
    record = _recorded_broker(lay.paths)
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
    try:
        return _run(args)
    except LocalKafkaError as error:
        print(f"secure_kafka: error: {error}", file=sys.stderr)
        if error.log_tail:
            print(error.log_tail, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("secure_kafka: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""The secured broker's state folder, made ready before its JVM starts and granted after: the layout
(files and ports), TLS material, the users' passwords, server.properties with secured listeners, the
storage formatted with the SCRAM users, and Baton's ACLs applied with Kafka's tools. See
infra/secure_kafka.py, which launches it."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import ssl
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from infra.broker_process import (
    HOST,
    LocalKafkaError,
    Paths,
    default_paths,
    escape_property,
    java,
    java_command,
    new_cluster_id,
)
from infra.java_args import NO_PERF_DATA, hidden_arguments
from infra.kafka_acls import ADMIN_USER, acl_tool_arguments, baton_roles, users
from infra.kafka_jars import fetch
from infra.kafka_tls import issue_client_certificates, new_ca, sign, write_private
from infra.local_kafka import render_properties
from infra.processes import tail_text
from schemas.topics import STEP_SERVICES

DEFAULT_PORT = 19094
SCRAM = "SCRAM-SHA-512"
BROKER_CN = "baton-broker"  # the broker's certificate: its principal on the controller listener
TOOL_TIMEOUT_SECONDS = 120
ACL_COMMAND = "org.apache.kafka.tools.AclCommand"  # kafka-acls
ACL_BATCH = Path(__file__).resolve().parent / "kafka" / "AclBatch.java"  # many kafka-acls runs, one JVM


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
        key, cert = sign(ca_pem, ca_key, BROKER_CN, work, "serverAuth,clientAuth",
                          f"subjectAltName=IP:{HOST},DNS:localhost\n")
        issue_client_certificates(ca_pem, ca_key, [role.user for role in baton_roles()], lay.clients)
        # The CA key is not kept: nothing else is ever signed with it.
        chain = key.read_text() + cert.read_text() + ca_pem.read_text()
        write_private(lay.broker_pem, chain)
        ca_pem.replace(lay.ca_file)



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
    lines += [f"{key}={escape_property(value)}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def _admin_client_properties(lay: Layout, admin_password: str) -> str:
    settings = {"security.protocol": "SASL_SSL", "sasl.mechanism": SCRAM,
                "sasl.jaas.config": _jaas(ADMIN_USER, admin_password),
                "ssl.truststore.type": "PEM", "ssl.truststore.location": str(lay.ca_file)}
    return "".join(f"{key}={escape_property(value)}\n" for key, value in settings.items())


def read_users(lay: Layout) -> dict[str, str]:
    """The users' passwords as the first `up` made them (users.json), by user."""
    try:
        passwords = json.loads(lay.users_file.read_text())
    except (OSError, ValueError):
        raise LocalKafkaError(f"no user passwords in {lay.users_file}; remove {lay.paths.state} "
                              "and run `up` again to make a fresh secured broker") from None
    return {str(user): str(password) for user, password in passwords.items()}


def write_password_files(lay: Layout) -> dict[str, Path]:
    """Each user's password in its own file (``secrets/<user>.password``, 0600, folder 0700),
    written from users.json where missing or different; returns the files by user."""
    passwords = read_users(lay)
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
            write_private(path, password + "\n")
    return files


def _passwords_for_format(lay: Layout) -> dict[str, str]:
    """The users' passwords: new ones before the first format, the stored ones afterwards."""
    formatted = (lay.paths.data / "meta.properties").is_file()
    if not formatted:
        passwords = {user: secrets.token_urlsafe(24) for user in users()}
        write_private(lay.users_file, json.dumps(passwords, indent=1) + "\n")
        return passwords
    passwords = read_users(lay)
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
    _tool(libs, lay, "kafka.tools.StorageTool", "format", "-t", new_cluster_id(),
          "-c", str(lay.paths.properties), *scram)
    lay.acl_marker.unlink(missing_ok=True)  # a new cluster has no ACLs yet


def _tool(libs: Path, lay: Layout, main_class: str, *args: str, stdin: str | None = None) -> str:
    """Run one of Kafka's command-line tools (or a source file); raise with its output if it fails.

    The main class and its arguments go through an owner-only @argfile (infra/java_args.py), so
    the SCRAM passwords of `format --add-scram` never show in the process list.
    """
    # A short-lived tool needs no optimising compiler; C1 only starts faster on 2 cores.
    cmd = java_command(libs, lay.paths, main_class, *args,
                    jvm_options=("-Xmx256m", "-XX:TieredStopAtLevel=1", NO_PERF_DATA))
    with hidden_arguments(cmd, main_class, lay.paths.state) as launch:
        result = subprocess.run(launch, capture_output=True, text=True, timeout=TOOL_TIMEOUT_SECONDS,
                                input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL)
    if result.returncode != 0:
        name = Path(main_class).stem.rsplit(".", 1)[-1]
        # Never echo the arguments: they may hold passwords.
        what = f"{name} {args[0]}" if args else name
        raise LocalKafkaError(f"{what} failed (exit {result.returncode})",
                              tail_text(result.stdout + result.stderr))
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
    return (Path(java()).resolve().parent / "javac").is_file()


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


def prepare_state(lay: Layout, libs: Path) -> None:
    """Everything the broker needs on disk before it starts: folders, TLS material, passwords,
    server.properties, the admin's client config, the password files, the formatted storage."""
    for folder in (lay.paths.data, lay.paths.logs):
        folder.mkdir(parents=True, exist_ok=True)
    _make_tls(lay)
    passwords = _passwords_for_format(lay)
    lay.paths.properties.write_text(render_secure_properties(lay, passwords[ADMIN_USER]))
    lay.paths.properties.chmod(0o600)  # it holds the admin password (inter-broker login)
    write_private(lay.admin_properties, _admin_client_properties(lay, passwords[ADMIN_USER]))
    write_password_files(lay)
    _format_storage(libs, lay, passwords)

"""Why a Kafka client cannot get in, found on a raw connection: a diagnosis for one-line errors.

aiokafka reports most refusals as the same "Unable to bootstrap" (the reason, when it has one, only
goes to its log), and some it never sees: a broker that expects TLS or a client certificate just
closes the connection. :func:`probe` connects to one bootstrap address as the settings would, and
asks the broker the two questions Kafka answers before any login: ApiVersions (does this port
speak Kafka over the transport we chose?) and SaslHandshake (does it want a SASL login, with which
mechanisms?). It returns what does not fit, with the setting that fixes it, or None when the
transport, TLS and mechanism all fit (a wrong password is then the remaining suspect, which only
a real login finds: see kafka_io.explain). Standard library only (plus ``cryptography``,
which PyJWT brings, to name a certificate's subject and issuer).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
from pathlib import Path

from kafka_io.settings import KafkaSettings
from schemas.errors import BatonError

API_VERSIONS, SASL_HANDSHAKE = 18, 17
UNSUPPORTED_SASL_MECHANISM, ILLEGAL_SASL_STATE = 33, 34  # Kafka error codes
_CLIENT_ID = b"baton-probe"
_TLS_RECORD_TYPES = (0x15, 0x16)  # alert, handshake: what a TLS server answers to plaintext
LOGIN_SETTINGS = ("BATON_KAFKA_SASL_MECHANISM, BATON_KAFKA_SASL_USERNAME and "
                  "BATON_KAFKA_SASL_PASSWORD_FILE (or _PASSWORD)")


class _Closed(BatonError):
    """The broker closed the connection (or sent garbage) before answering."""


def split_address(address: str) -> tuple[str, int]:
    """("host", port) of "host:port" ("[::1]:9092" too); Kafka's default port 9092 if none."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return address.strip("[]"), 9092
    return host.strip("[]"), int(port)


def probe(settings: KafkaSettings, address: str, timeout: float = 5.0) -> str | None:
    """What keeps a client with ``settings`` out of the broker at ``address``; None if nothing
    a raw connection can see (the login itself is not tried)."""
    host, port = split_address(address)
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except socket.gaierror as exc:
        return f"cannot reach Kafka at {address}: the host name does not resolve ({exc.strerror})"
    except ConnectionRefusedError:
        return (f"cannot reach Kafka at {address}: connection refused (is the broker running and the "
                "address right?)")
    except OSError as exc:
        return f"cannot reach Kafka at {address}: {exc.strerror or type(exc).__name__} (is the address right?)"
    with raw:
        if settings.uses_tls:
            return _probe_tls(settings, raw, address, timeout)
        return _probe_plaintext(settings, raw, address, timeout)


def _probe_tls(settings: KafkaSettings, raw: socket.socket, address: str, timeout: float) -> str | None:
    host, port = split_address(address)
    context = settings.ssl_context()
    assert context is not None  # uses_tls
    try:
        conn = context.wrap_socket(raw, server_hostname=host)
    except ssl.SSLCertVerificationError as exc:
        return _untrusted(settings, exc, address, timeout)
    except (ssl.SSLError, OSError) as exc:
        if _answers_kafka(host, port, timeout):
            return (f"the broker at {address} speaks plaintext on this port, not TLS: set "
                    f"BATON_KAFKA_SECURITY_PROTOCOL={_plain(settings)}, or use the broker's TLS port")
        if isinstance(exc, ssl.SSLError) and _is_certificate_alert(exc):
            return _certificate_refused(settings, address)
        return f"TLS handshake with {address} failed: {_reason(exc)}"
    with conn:
        try:
            _ask(conn, API_VERSIONS, 0, b"")
        except ssl.SSLError as exc:
            # With TLS 1.3 the server checks the client's certificate after the client finished
            # its handshake, so a refused (or missing) certificate shows on the first read.
            if _is_certificate_alert(exc):
                return _certificate_refused(settings, address)
            return f"the broker at {address} ended the TLS session: {_reason(exc)}"
        except (_Closed, OSError) as exc:
            return f"the broker at {address} closed the connection before answering ({_reason(exc)})"
        return _probe_sasl(settings, conn, address)


def _probe_plaintext(settings: KafkaSettings, raw: socket.socket, address: str, timeout: float) -> str | None:
    tls_answer = (f"the broker at {address} expects TLS on this port: set BATON_KAFKA_SECURITY_PROTOCOL="
                  f"{_tls(settings)} and BATON_KAFKA_SSL_CAFILE to the CA of its certificate")
    try:
        _ask(raw, API_VERSIONS, 0, b"")
    except _Closed as exc:
        if exc.args and isinstance(exc.args[0], bytes) and exc.args[0][:1] and exc.args[0][0] in _TLS_RECORD_TYPES:
            return tls_answer
        return tls_answer if _speaks_tls(*split_address(address), timeout) else (
            f"the broker at {address} closed the connection before answering: is it a Kafka port?")
    except OSError as exc:
        return f"the broker at {address} did not answer: {_reason(exc)}"
    return _probe_sasl(settings, raw, address)


def _probe_sasl(settings: KafkaSettings, conn: socket.socket, address: str) -> str | None:
    """Whether the listener wants a SASL login, and with the configured mechanism."""
    mechanism = settings.kafka_sasl_mechanism or "PLAIN"
    try:
        body = _ask(conn, SASL_HANDSHAKE, 1, _string(mechanism))
        error, enabled = _sasl_handshake_reply(body)
    except (_Closed, OSError, struct.error):
        return None  # not an answer we can read: leave it to the real login
    wants_sasl = error != ILLEGAL_SASL_STATE  # a listener without SASL refuses the handshake so
    logs_in = settings.kafka_security_protocol.startswith("SASL_")
    if wants_sasl and not logs_in:
        return (f"the broker at {address} requires a SASL login on this port (mechanisms: "
                f"{', '.join(enabled) or 'none enabled'}): set BATON_KAFKA_SECURITY_PROTOCOL="
                f"{'SASL_SSL' if settings.uses_tls else 'SASL_PLAINTEXT'} and {LOGIN_SETTINGS}")
    if not wants_sasl and logs_in:
        how = ("by client certificate (mTLS) or not at all" if settings.uses_tls else "at all")
        return (f"the broker at {address} takes no SASL login on this port (it authenticates {how}): "
                f"set BATON_KAFKA_SECURITY_PROTOCOL={'SSL' if settings.uses_tls else 'PLAINTEXT'} "
                "without BATON_KAFKA_SASL_*, or use the broker's SASL port")
    if logs_in and error == UNSUPPORTED_SASL_MECHANISM:
        return (f"the broker at {address} does not enable SASL mechanism {mechanism} (it enables "
                f"{', '.join(enabled) or 'none'}): set BATON_KAFKA_SASL_MECHANISM to one of those")
    return None


# ------------------------------------------------------------ certificates


def _untrusted(settings: KafkaSettings, exc: ssl.SSLCertVerificationError, address: str, timeout: float) -> str:
    host, port = split_address(address)
    certificate = _peer_certificate(host, port, timeout)
    if exc.verify_code == 62:  # X509_V_ERR_HOSTNAME_MISMATCH
        return (f"TLS: the broker's certificate at {address}{certificate} is not valid for host {host!r}: "
                "connect by a name or address the certificate lists (or have it reissued with this one)")
    trust = (f"the CA file {settings.kafka_ssl_cafile} (BATON_KAFKA_SSL_CAFILE)" if settings.kafka_ssl_cafile
             else "the system's CA certificates (BATON_KAFKA_SSL_CAFILE is not set)")
    return (f"TLS: the broker's certificate at {address}{certificate} is not trusted by {trust}: "
            f"{exc.verify_message}; set BATON_KAFKA_SSL_CAFILE to the CA that signed the broker's certificate")


def _certificate_refused(settings: KafkaSettings, address: str) -> str:
    if not settings.kafka_ssl_certfile:
        return (f"the broker at {address} requires a client certificate (mutual TLS) and none is set: set "
                "BATON_KAFKA_SSL_CERTFILE and BATON_KAFKA_SSL_KEYFILE (or use the broker's SASL port)")
    certificate = _describe_pem(Path(settings.kafka_ssl_certfile))
    return (f"the broker at {address} refused the client certificate {settings.kafka_ssl_certfile}"
            f"{certificate}: it is not signed by a CA the broker trusts (or has expired); use a "
            "certificate issued by the broker's client CA")


def _is_certificate_alert(exc: ssl.SSLError) -> bool:
    reason = (exc.reason or "").upper()
    return any(alert in reason for alert in ("BAD_CERTIFICATE", "CERTIFICATE_REQUIRED", "CERTIFICATE_UNKNOWN",
                                             "UNKNOWN_CA", "CERTIFICATE_EXPIRED", "HANDSHAKE_FAILURE"))


def _peer_certificate(host: str, port: int, timeout: float) -> str:
    """ " (CN=…, issued by CN=…)" of the certificate the broker presents, read without verifying it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # only to name the certificate that failed verification
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=host) as conn:
            der = conn.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError):
        return ""
    return _describe_der(der) if der else ""


def _describe_pem(path: Path) -> str:
    with contextlib.suppress(OSError, ValueError):
        return _describe_der(ssl.PEM_cert_to_DER_cert(path.read_text()))
    return ""


def _describe_der(der: bytes) -> str:
    try:
        from cryptography import x509
    except ImportError:  # only names the certificate; the diagnosis stands without it
        return ""
    try:
        certificate = x509.load_der_x509_certificate(der)
    except ValueError:
        return ""
    return f" ({certificate.subject.rfc4514_string()}, issued by {certificate.issuer.rfc4514_string()})"


# ------------------------------------------------------------ the wire


def _ask(conn: socket.socket, api_key: int, version: int, body: bytes) -> bytes:
    """Send one request (header v1) and return the response body after the correlation id."""
    header = struct.pack(">hhih", api_key, version, api_key, len(_CLIENT_ID)) + _CLIENT_ID
    request = header + body
    conn.sendall(struct.pack(">i", len(request)) + request)
    head = _read(conn, 8)
    size, correlation = struct.unpack(">ii", head)
    if correlation != api_key or not 4 <= size <= 1 << 20:
        raise _Closed(head)
    return _read(conn, size - 4)


def _read(conn: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = conn.recv(count - len(data))
        if not chunk:
            raise _Closed(data)
        data += chunk
    return data


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack(">h", len(raw)) + raw


def _sasl_handshake_reply(body: bytes) -> tuple[int, list[str]]:
    error, count = struct.unpack_from(">hi", body)
    offset, mechanisms = 6, []
    for _ in range(max(count, 0)):
        (length,) = struct.unpack_from(">h", body, offset)
        mechanisms.append(body[offset + 2:offset + 2 + length].decode(errors="replace"))
        offset += 2 + length
    return error, mechanisms


def _answers_kafka(host: str, port: int, timeout: float) -> bool:
    """True if the port answers a plaintext ApiVersions request."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            _ask(raw, API_VERSIONS, 0, b"")
            return True
    except (_Closed, OSError, struct.error):
        return False


def _speaks_tls(host: str, port: int, timeout: float) -> bool:
    """True if the port answers a TLS handshake (its certificate is not checked: only the protocol)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=host):
            return True
    except ssl.SSLError as exc:
        return _is_certificate_alert(exc)  # a TLS server that wants a client certificate
    except OSError:
        return False


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return exc.reason.replace("_", " ").lower()
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _plain(settings: KafkaSettings) -> str:
    return "SASL_PLAINTEXT" if settings.kafka_security_protocol.startswith("SASL_") else "PLAINTEXT"


def _tls(settings: KafkaSettings) -> str:
    return "SASL_SSL" if settings.kafka_sasl_mechanism else "SSL (SASL_SSL with a login)"

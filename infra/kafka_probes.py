"""Is a Kafka broker there? An open port, a Kafka ApiVersions answer (stdlib), and the brokers a
metadata request lists (aiokafka, when it is importable)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import struct

from infra.broker_process import HOST


def port_accepts(port: int, timeout: float = 1.0) -> bool:
    """True if something accepts TCP connections on 127.0.0.1:port."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def answers_kafka(port: int, timeout: float = 3.0) -> bool:
    """True if 127.0.0.1:port answers a Kafka ApiVersions (v0) request.

    A broker only processes requests once it has caught up with the metadata quorum,
    so an answer means more than an open port.
    """
    client_id = b"baton-local-kafka"
    correlation_id = 0x5EED
    request = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(struct.pack(">i", len(request)) + request)
            (size,) = struct.unpack(">i", _recv_exact(sock, 4))
            response = _recv_exact(sock, min(size, 8))
    except (OSError, struct.error):
        return False
    # Any error code still proves it is Kafka; only the correlation id matters.
    return len(response) >= 4 and struct.unpack(">i", response[:4])[0] == correlation_id


def _recv_exact(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise OSError("connection closed")
        data += chunk
    return data


def listed_brokers(bootstrap: str, timeout_ms: int = 5000) -> set[int] | None:
    """Node ids of the brokers a metadata request lists (empty if no broker answers); None when
    aiokafka is not installed. Safe to call from inside a running event loop."""
    try:
        from aiokafka.client import AIOKafkaClient
    except ImportError:
        return None

    async def probe() -> set[int]:
        client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms)
        try:
            await client.bootstrap()
            return {broker.nodeId for broker in client.cluster.brokers()}
        except Exception:  # any failure just means "not ready (yet)"
            return set()
        finally:
            await client.close()

    # A worker thread has its own event loop, so this works when the caller runs one.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, probe()).result()

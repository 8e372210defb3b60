"""The payload store against a real S3-compatible server: moto's server mode (an HTTP server
speaking the S3 REST protocol, started here on a free port and stopped after), reached through
the same SigV4-over-httpx client as production (kafka_io.payloads.S3Backend)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from kafka_io.payloads import PayloadSettings, open_payload_store
from kafka_io.sigv4 import sigv4_headers
from schemas.payloads import PayloadError, is_reference

moto_server = pytest.importorskip("moto.server", reason="moto[server] is a dev dependency (scripts/bootstrap)")

KEY, SECRET = "baton-test", "baton-test-secret"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def _create_bucket(endpoint: str, bucket: str) -> None:
    url = f"{endpoint}/{bucket}"
    headers = sigv4_headers("PUT", url, region="us-east-1", service="s3", access_key=KEY, secret_key=SECRET)
    assert httpx.put(url, headers=headers).status_code == 200


def test_s3_store_offloads_hydrates_and_removes(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _create_bucket(s3_endpoint, "payloads")
    settings = PayloadSettings(payload_store="s3://payloads/baton", payload_s3_endpoint=s3_endpoint,
                               payload_s3_access_key_id=KEY, payload_s3_secret_access_key=SECRET,
                               payload_offload_bytes=1024, payload_cache_bytes=0)
    store = open_payload_store(settings)
    assert store is not None and store.where() == "s3://payloads/baton"
    execution, other = "arn:baton:states:local:execution:m:s3", "arn:baton:states:local:execution:m:kept"
    document = {"text": "word " * 2_000_000, "pages": 3}  # 10 MB
    began = time.perf_counter()
    out = store.offload(document, execution)
    assert is_reference(out["text"]) and out["pages"] == 3
    assert store.hydrate(out, execution) == document
    kept = store.offload({"text": "other " * 1000}, other)
    assert store.offload(document, execution) == out  # content-addressed: the same reference again
    assert store.remove(execution) == 1
    with pytest.raises(PayloadError) as missing:
        store.hydrate(out, execution)
    assert missing.value.error == "Baton.Payload.Missing"
    assert store.hydrate(kept, other)["text"].startswith("other ")  # another execution's objects stay
    print(f"\nS3 (moto server) 10 MB put+get+remove: {time.perf_counter() - began:.2f} s")
    store.close()


def test_s3_store_says_what_is_wrong(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    unsigned = open_payload_store(PayloadSettings(payload_store="s3://payloads", payload_s3_endpoint=s3_endpoint,
                                                  payload_offload_bytes=1024))
    assert unsigned is not None
    with pytest.raises(Exception, match="no credentials for the payload store s3://payloads"):
        unsigned.offload({"x": "y" * 5000}, "e")
    no_bucket = open_payload_store(PayloadSettings(
        payload_store="s3://no-such-bucket", payload_s3_endpoint=s3_endpoint, payload_s3_access_key_id=KEY,
        payload_s3_secret_access_key=SECRET, payload_offload_bytes=1024))
    assert no_bucket is not None
    with pytest.raises(Exception, match="payload store s3://no-such-bucket: PUT .* answered HTTP 404"):
        no_bucket.offload({"x": "y" * 5000}, "e")

"""The payload store (the claim check's I/O): where values too big for a Kafka record are kept.

`schemas.payloads` defines the reference and the pure walks; this module stores and fetches the
bytes, in a local folder or an S3-compatible bucket, for the orchestrator and the step services
alike (`steps/` may import it; it imports nothing of theirs). Off unless `BATON_PAYLOAD_STORE` is
set: with it unset every record is exactly as before (docs/payloads.md).

The I/O is synchronous on purpose: the orchestrator decides in plain functions between two
awaits (a decision is not a coroutine), and the step services call it through
`asyncio.to_thread`. Objects are written once under their content hash (a write of a key that
exists is skipped), so a replayed transaction or a retried task stores nothing twice.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlsplit
from xml.etree import ElementTree

import httpx
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from kafka_io.sigv4 import sigv4_headers
from schemas.errors import BatonError
from schemas.payloads import DATA_LIMIT_EXCEEDED, PayloadError, hydrate, offload, scope_of

_KNOWN_KEYS = 100_000  # ~10 MB of keys at most


class PayloadStoreError(BatonError):
    """The payload store cannot be reached or refused a read or write (not a missing object)."""


class PayloadSettings(BaseSettings):
    """Env: BATON_PAYLOAD_STORE, BATON_PAYLOAD_OFFLOAD_BYTES, BATON_MAX_OFFLOADED_PAYLOAD, ...
    Give every orchestrator and step service the same values (they read each other's objects)."""

    model_config = SettingsConfigDict(env_prefix="BATON_", extra="ignore")

    # "" (off), a folder (`/var/lib/baton/payloads`, `file://...`) or `s3://bucket/prefix`.
    payload_store: str = ""
    # A value whose compact JSON is over this travels as a reference: ASL's 256 KiB by default, so
    # what fits AWS's quota stays inline exactly as before.
    payload_offload_bytes: int = Field(default=256 * 1024, ge=1024)
    # The most one payload (a state's input or output, a task's result) may be once offloaded;
    # past it States.DataLimitExceeded, as the inline quota does.
    max_offloaded_payload: int = Field(default=64 * 1024 * 1024, ge=1024)
    # S3-compatible servers: endpoint (MinIO, Ceph, R2, a test server), region, credentials (else
    # AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN), path-style addressing.
    payload_s3_endpoint: str | None = None
    payload_s3_region: str = "us-east-1"
    payload_s3_access_key_id: str | None = None
    payload_s3_secret_access_key: SecretStr | None = None
    payload_s3_path_style: bool = True
    payload_timeout_seconds: float = Field(default=30.0, gt=0)
    # Bytes of recently used objects kept in memory: a payload read again by the next decision
    # or command is not fetched again.
    payload_cache_bytes: int = Field(default=128 * 1024 * 1024, ge=0)


class Backend(Protocol):
    def put(self, key: str, data: bytes) -> None: ...
    def get(self, key: str) -> bytes | None: ...
    def remove_prefix(self, prefix: str) -> int: ...
    def where(self) -> str: ...
    def close(self) -> None: ...


class FolderBackend:
    """Objects as files `<root>/<scope>/<sha256>`, each written to a temporary file and renamed
    into place, so a reader never sees half an object."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        if ".." in key.split("/") or key.startswith("/"):
            raise PayloadStoreError(f"payload key {key!r} is not a relative key")
        return self.root / key

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".part-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def remove_prefix(self, prefix: str) -> int:
        folder = self._path(prefix)
        count = sum(1 for _ in folder.glob("*")) if folder.is_dir() else 0
        shutil.rmtree(folder, ignore_errors=True)
        return count

    def where(self) -> str:
        return str(self.root)

    def close(self) -> None:
        pass


class S3Backend:
    """Objects `<prefix>/<scope>/<sha256>` in an S3-compatible bucket: PutObject, GetObject,
    ListObjectsV2 and DeleteObject, signed with SigV4 over httpx (`kafka_io.sigv4`, the
    prompt store's signer), so no botocore."""

    def __init__(self, bucket: str, prefix: str, settings: PayloadSettings,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.bucket, self.prefix, self.settings = bucket, prefix.strip("/"), settings
        self.endpoint = (settings.payload_s3_endpoint
                         or f"https://s3.{settings.payload_s3_region}.amazonaws.com").rstrip("/")
        self.client = httpx.Client(timeout=settings.payload_timeout_seconds, transport=transport)

    def _url(self, key: str, query: str = "") -> str:
        path = quote("/".join(p for p in (self.prefix, key) if p), safe="/-_.~")
        if self.settings.payload_s3_path_style:
            base = f"{self.endpoint}/{self.bucket}/{path}"
        else:
            parts = urlsplit(self.endpoint)
            base = f"{parts.scheme}://{self.bucket}.{parts.netloc}/{path}"
        return f"{base}?{query}" if query else base

    def _send(self, method: str, url: str, data: bytes = b"", missing_ok: bool = False) -> httpx.Response:
        s = self.settings
        access = s.payload_s3_access_key_id or os.environ.get("AWS_ACCESS_KEY_ID")
        secret = (s.payload_s3_secret_access_key.get_secret_value() if s.payload_s3_secret_access_key
                  else os.environ.get("AWS_SECRET_ACCESS_KEY"))
        if not access or not secret:
            raise PayloadStoreError(f"no credentials for the payload store s3://{self.bucket}: set "
                                    "BATON_PAYLOAD_S3_ACCESS_KEY_ID and BATON_PAYLOAD_S3_SECRET_ACCESS_KEY "
                                    "(or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")
        headers = sigv4_headers(method, url, region=s.payload_s3_region, service="s3", access_key=access,
                                secret_key=secret, session_token=os.environ.get("AWS_SESSION_TOKEN"), payload=data)
        try:
            response = self.client.request(method, url, content=data or None, headers=headers)
        except httpx.HTTPError as exc:
            raise PayloadStoreError(f"payload store {self.where()}: {method} failed: {type(exc).__name__}: "
                                    f"{exc}") from None
        if response.status_code >= 400 and not (missing_ok and response.status_code == 404):
            raise PayloadStoreError(f"payload store {self.where()}: {method} {url.split('?')[0]} answered HTTP "
                                    f"{response.status_code} {response.text[:200]}")
        return response

    def put(self, key: str, data: bytes) -> None:
        # No existence check first: a PUT of the same content-addressed bytes is idempotent, and
        # a HEAD before each write would cost a round trip for the rare retry.
        self._send("PUT", self._url(key), data)

    def get(self, key: str) -> bytes | None:
        response = self._send("GET", self._url(key), missing_ok=True)
        return None if response.status_code == 404 else response.content

    def remove_prefix(self, prefix: str) -> int:
        listed = "/".join(p for p in (self.prefix, prefix) if p) + "/"
        base = f"{self.endpoint}/{self.bucket}" if self.settings.payload_s3_path_style else \
            f"{urlsplit(self.endpoint).scheme}://{self.bucket}.{urlsplit(self.endpoint).netloc}"
        names: list[str] = []
        token = ""
        while True:  # ListObjectsV2 answers at most 1,000 keys a page
            query = f"list-type=2&prefix={quote(listed, safe='-_.~')}"
            if token:
                query += f"&continuation-token={quote(token, safe='-_.~')}"
            page = ElementTree.fromstring(self._send("GET", f"{base}/?{query}").content)
            found = {element.tag.rpartition("}")[2]: element.text or "" for element in page}
            names += [element.text or "" for element in page.iter() if element.tag.rpartition("}")[2] == "Key"]
            token = found.get("NextContinuationToken", "") if found.get("IsTruncated") == "true" else ""
            if not token:
                break
        for name in names:
            self._send("DELETE", f"{base}/{quote(name, safe='/-_.~')}", missing_ok=True)
        return len(names)

    def where(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def close(self) -> None:
        self.client.close()


class PayloadStore:
    """Offload a value's large parts for one execution, hydrate them back, remove an execution's
    objects. One per process; thread-safe (the step services call it from worker threads)."""

    def __init__(self, backend: Backend, settings: PayloadSettings) -> None:
        self.backend, self.settings = backend, settings
        self.threshold = settings.payload_offload_bytes
        self.limit = settings.max_offloaded_payload
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cached = 0
        # Keys known to be in the store (written or read here): an execution's state is offloaded
        # again at every commit, and its unchanged values must not be uploaded again each time.
        self._known: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, key: str, data: bytes) -> None:
        if len(data) > self.limit:
            raise PayloadError(DATA_LIMIT_EXCEEDED, f"a payload of {len(data)} bytes is over the limit of "
                               f"{self.limit} bytes for offloaded data (BATON_MAX_OFFLOADED_PAYLOAD)")
        if key in self._known:
            return
        self.backend.put(key, data)
        self._remember(key, data)

    def get(self, key: str) -> bytes | None:
        with self._lock:
            data = self._cache.get(key)
            if data is not None:
                self._cache.move_to_end(key)
                return data
        data = self.backend.get(key)
        if data is not None:
            self._remember(key, data)
        return data

    def _remember(self, key: str, data: bytes) -> None:
        with self._lock:
            self._known[key] = None
            if len(self._known) > _KNOWN_KEYS:
                self._known.popitem(last=False)
        if len(data) > self.settings.payload_cache_bytes // 4:
            return  # one object must not evict everything else
        with self._lock:
            if key in self._cache:
                return
            self._cache[key] = data
            self._cached += len(data)
            while self._cached > self.settings.payload_cache_bytes and self._cache:
                _, dropped = self._cache.popitem(last=False)
                self._cached -= len(dropped)

    def offload(self, value: Any, execution_id: str, *, keep_root: bool = False) -> Any:
        """`value` with its parts over the threshold stored and replaced by references."""
        return offload(value, scope=scope_of(execution_id), threshold=self.threshold, put=self.put,
                       keep_root=keep_root)

    def hydrate(self, value: Any, execution_id: str) -> Any:
        """`value` with its references resolved (PayloadError: missing, corrupt, over the limit)."""
        return hydrate(value, scope=scope_of(execution_id), get=self.get, limit=self.limit)

    def remove(self, execution_id: str) -> int:
        """Remove everything stored for an execution (its retention ended); the count removed."""
        scope = scope_of(execution_id)
        with self._lock:
            for key in [k for k in self._cache if k.startswith(scope + "/")]:
                self._cached -= len(self._cache.pop(key))
            for key in [k for k in self._known if k.startswith(scope + "/")]:
                del self._known[key]
        return self.backend.remove_prefix(scope)

    def where(self) -> str:
        return self.backend.where()

    def close(self) -> None:
        self.backend.close()


def offloaded_limit(settings: PayloadSettings | None = None) -> int | None:
    """The offloaded payload limit when a store is configured (BATON_PAYLOAD_STORE), else None."""
    settings = settings or PayloadSettings()
    return settings.max_offloaded_payload if settings.payload_store.strip() else None


def open_payload_store(settings: PayloadSettings | None = None, *,
                       transport: httpx.BaseTransport | None = None) -> PayloadStore | None:
    """The store `BATON_PAYLOAD_STORE` names, or None when it is unset (the claim check is off)."""
    settings = settings or PayloadSettings()
    url = settings.payload_store.strip()
    if not url:
        return None
    if url.startswith("s3://"):
        bucket, _, prefix = url[len("s3://"):].partition("/")
        if not bucket:
            raise PayloadStoreError(f"payload store {url!r} names no bucket (expected s3://bucket/prefix)")
        return PayloadStore(S3Backend(bucket, prefix, settings, transport), settings)
    path = url[len("file://"):] if url.startswith("file://") else url
    return PayloadStore(FolderBackend(Path(path).expanduser()), settings)

"""Prompt templates: Jinja2 in a sandbox, inline or loaded by a pinned reference from a store.

Templates are Jinja2 (`{{ topic }}`, `{% for doc in documents %}`, filters such as `tojson`)
rendered in Jinja's `ImmutableSandboxedEnvironment`: no access to Python internals, no mutation of
the state input, `StrictUndefined` so a variable missing from the input is an error instead of a
silently empty prompt, and the output is cut off at `max_prompt_chars` while rendering.

A reference `[store:]name@version[#sha256=HEX]` names a template in a prompt store (see
`PromptStoreConfig`): `answer@v3` -> `<default store>/answer/v3.j2`, `team:support/triage@2024-06`
-> `<team store>/support/triage/2024-06.j2`. The version is required, so a definition always names
the exact template it was tested with; a `#sha256=` pin also makes the service refuse a file that
was changed in place. Templates by reference are cached by (store, name, version).

Stores: a folder, an HTTP(S) base URL (optionally with a bearer token), or an S3-compatible
bucket. S3 objects are fetched with a plain SigV4-signed GET over httpx rather than boto3: one
GetObject is all a prompt store needs, it stays async on the service's event loop, and it works with
any S3-compatible server (MinIO, Ceph, R2) without pulling botocore (~100 MB) into every
deployment of the LLM service.

Writing (the API's studio publishes an edited prompt): `PromptLibrary.publish` writes a template as
the next free version `vN` of its name in a folder or S3 store, never over an existing version (a
folder store links a finished temporary file into place, which fails if the name exists; S3 is
asked with `If-None-Match: *`), so a reference that was tested keeps naming the same text.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import tempfile
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import jinja2
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from kafka_io.sigv4 import sigv4_headers
from steps.llm.config import LLMSettings, PromptStoreConfig
from steps.llm.errors import PromptError, PromptVersionExists

DEFAULT_STORE = "default"
_REF = re.compile(
    r"^(?:(?P<store>[A-Za-z0-9_-]+):)?(?P<name>[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*)"
    r"@(?P<version>[A-Za-z0-9_.-]+)(?:#sha256=(?P<sha256>[0-9a-fA-F]{64}))?$")
_NUMBERED = re.compile(r"^v(\d{1,9})$")  # the versions `publish` numbers: v1, v2, ...
_PUBLISH_ATTEMPTS = 100  # versions taken meanwhile by other writers before `publish` gives up


@dataclass(frozen=True)
class PromptRef:
    """A pinned template reference."""

    store: str
    name: str
    version: str
    sha256: str | None = None

    @classmethod
    def parse(cls, text: str) -> PromptRef:
        match = _REF.match(text)
        if match is None or any(part in (".", "..") for part in match["name"].split("/")) \
                or match["version"] in (".", ".."):
            raise PromptError(f"invalid prompt reference {text!r}: expected [store:]name@version"
                              "[#sha256=HEX], e.g. 'answer@v3' or 'team:support/triage@2024-06'")
        return cls(match["store"] or DEFAULT_STORE, match["name"], match["version"],
                   match["sha256"].lower() if match["sha256"] else None)

    def __str__(self) -> str:
        store = "" if self.store == DEFAULT_STORE else f"{self.store}:"
        return f"{store}{self.name}@{self.version}"


@dataclass(frozen=True)
class LoadedTemplate:
    ref: PromptRef
    source: str
    sha256: str  # of the template's bytes, recorded with the result


class PromptStore(ABC):
    """Where versioned templates live."""

    @abstractmethod
    async def fetch(self, name: str, version: str) -> bytes:
        """The template's bytes; raise PromptError (naming where it looked) if it is not there."""

    async def create(self, name: str, version: str, data: bytes) -> None:
        """Store a new version; PromptVersionExists if it is already there (never overwritten)."""
        raise PromptError(f"the prompt store {self.where()} is read-only: cannot write {name}@{version}")

    async def versions(self, name: str) -> list[str]:
        """The versions of `name` the store can list (default: none; `publish` then probes)."""
        return []

    def where(self) -> str:
        """The store's location, for messages."""
        return type(self).__name__

    async def aclose(self) -> None:
        """Release connections (default: nothing to release)."""


class FolderStore(PromptStore):
    """`<root>/<name>/<version><suffix>` on the local file system (or a mounted volume)."""

    def __init__(self, root: Path, suffix: str = ".j2") -> None:
        self.root = root.resolve()
        self.suffix = suffix

    async def fetch(self, name: str, version: str) -> bytes:
        path = (self.root / name / f"{version}{self.suffix}").resolve()
        if not path.is_relative_to(self.root):  # PromptRef forbids "..", but be sure
            raise PromptError(f"prompt {name}@{version} resolves outside the store {self.root}")
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise PromptError(f"prompt {name}@{version} not found: no file {path}") from None
        except OSError as exc:
            raise PromptError(f"cannot read prompt {name}@{version} at {path}: {exc.strerror or exc}") from None

    def where(self) -> str:
        return str(self.root)

    def _path(self, name: str, version: str) -> Path:
        path = (self.root / name / f"{version}{self.suffix}").resolve()
        if not path.is_relative_to(self.root):
            raise PromptError(f"prompt {name}@{version} resolves outside the store {self.root}")
        return path

    async def create(self, name: str, version: str, data: bytes) -> None:
        await asyncio.to_thread(self._create, self._path(name, version), f"{name}@{version}", data)

    @staticmethod
    def _create(path: Path, what: str, data: bytes) -> None:
        # Written whole to a temporary file first, then hard-linked into place: a reader never
        # sees half a template, and link() fails when the version exists, so two writers of the
        # same version cannot overwrite each other.
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".new-", suffix=".tmp")
            try:
                with os.fdopen(handle, "wb") as file:
                    file.write(data)
                os.link(temporary, path)
            finally:
                os.unlink(temporary)
        except FileExistsError:
            raise PromptVersionExists(f"prompt {what} already exists at {path}") from None
        except OSError as exc:
            raise PromptError(f"cannot write prompt {what} at {path}: {exc.strerror or exc}") from None

    async def versions(self, name: str) -> list[str]:
        folder = self._path(name, "v0").parent

        def listed() -> list[str]:
            try:
                return [p.name[: -len(self.suffix)] for p in folder.iterdir()
                        if p.name.endswith(self.suffix) and not p.name.startswith(".")]
            except FileNotFoundError:
                return []

        return await asyncio.to_thread(listed)


class HttpStore(PromptStore):
    """`GET <base>/<name>/<version><suffix>` with an optional bearer token."""

    def __init__(self, base_url: str, config: PromptStoreConfig, *,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.suffix = config.suffix
        token = config.bearer_token.get_secret_value() if config.bearer_token else (
            os.environ.get(config.bearer_token_env, "") if config.bearer_token_env else "")
        self.client = httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"} if token else {},
                                        timeout=config.timeout_seconds, transport=transport)

    async def fetch(self, name: str, version: str) -> bytes:
        url = f"{self.base_url}/{quote(name)}/{quote(version)}{self.suffix}"
        return await _get(self.client, url, {}, f"{name}@{version}")

    async def aclose(self) -> None:
        await self.client.aclose()


class S3Store(PromptStore):
    """`s3://bucket/prefix`: object `<prefix>/<name>/<version><suffix>`, fetched with SigV4."""

    def __init__(self, bucket: str, prefix: str, config: PromptStoreConfig, *,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.config = config
        self.endpoint = (config.endpoint_url or f"https://s3.{config.region}.amazonaws.com").rstrip("/")
        self.client = httpx.AsyncClient(timeout=config.timeout_seconds, transport=transport)

    def url(self, key: str) -> str:
        path = quote(key, safe="/-_.~")
        if self.config.path_style:
            return f"{self.endpoint}/{self.bucket}/{path}"
        parts = urlsplit(self.endpoint)
        return f"{parts.scheme}://{self.bucket}.{parts.netloc}/{path}"

    def _credentials(self) -> tuple[str, str, str | None]:
        access = self.config.access_key_id or os.environ.get("AWS_ACCESS_KEY_ID")
        secret = (self.config.secret_access_key.get_secret_value() if self.config.secret_access_key
                  else os.environ.get("AWS_SECRET_ACCESS_KEY"))
        token = (self.config.session_token.get_secret_value() if self.config.session_token
                 else os.environ.get("AWS_SESSION_TOKEN"))
        if not access or not secret:
            raise PromptError(f"no credentials for the prompt store s3://{self.bucket}: set access_key_id and "
                              "secret_access_key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
        return access, secret, token

    def _key(self, name: str, version: str) -> str:
        return "/".join(part for part in (self.prefix, name, f"{version}{self.config.suffix}") if part)

    def where(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    async def fetch(self, name: str, version: str) -> bytes:
        url = self.url(self._key(name, version))
        access, secret, token = self._credentials()
        headers = sigv4_headers("GET", url, region=self.config.region, service="s3", access_key=access,
                                secret_key=secret, session_token=token)
        return await _get(self.client, url, headers, f"{name}@{version}")

    async def create(self, name: str, version: str, data: bytes) -> None:
        """PutObject with `If-None-Match: *`: S3 (and MinIO) answer 412 when the key exists."""
        url = self.url(self._key(name, version))
        access, secret, token = self._credentials()
        headers = sigv4_headers("PUT", url, region=self.config.region, service="s3", access_key=access,
                                secret_key=secret, session_token=token, payload=data,
                                headers={"If-None-Match": "*", "Content-Type": "text/plain; charset=utf-8"})
        shown, what = url.split("?", 1)[0], f"{name}@{version}"
        try:
            response = await self.client.put(url, content=data, headers=headers)
        except httpx.HTTPError as exc:
            raise PromptError(f"cannot write prompt {what} to {shown}: {type(exc).__name__}: {exc}") from None
        if response.status_code in (409, 412):  # 409: a concurrent conditional write of the same key
            raise PromptVersionExists(f"prompt {what} already exists at {shown}")
        if response.status_code >= 400:
            raise PromptError(f"cannot write prompt {what} to {shown}: HTTP {response.status_code} "
                              f"{response.text[:200]}")

    async def aclose(self) -> None:
        await self.client.aclose()


def make_store(config: PromptStoreConfig, *, transport: httpx.AsyncBaseTransport | None = None) -> PromptStore:
    """The store a `PromptStoreConfig.url` names."""
    url = config.url
    if url.startswith(("http://", "https://")):
        return HttpStore(url, config, transport=transport)
    if url.startswith("s3://"):
        bucket, _, prefix = url[len("s3://"):].partition("/")
        if not bucket:
            raise PromptError(f"prompt store {url!r} names no bucket (expected s3://bucket/prefix)")
        return S3Store(bucket, prefix, config, transport=transport)
    path = url[len("file://"):] if url.startswith("file://") else url
    return FolderStore(Path(path).expanduser(), config.suffix)


async def _get(client: httpx.AsyncClient, url: str, headers: dict[str, str], what: str) -> bytes:
    shown = url.split("?", 1)[0]
    try:
        response = await client.get(url, headers=headers)
    except httpx.HTTPError as exc:
        raise PromptError(f"cannot fetch prompt {what} from {shown}: {type(exc).__name__}: {exc}") from None
    if response.status_code == 404:
        raise PromptError(f"prompt {what} not found at {shown} (HTTP 404)")
    if response.status_code >= 400:
        raise PromptError(f"cannot fetch prompt {what} from {shown}: HTTP {response.status_code} "
                          f"{response.text[:200]}")
    return response.content


# --------------------------------------------------------------------------- rendering


class PromptLibrary:
    """Loads pinned templates from the configured stores and renders templates in the sandbox."""

    def __init__(self, settings: LLMSettings, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.max_chars = settings.max_prompt_chars
        self.stores = {name: make_store(config, transport=transport)
                       for name, config in settings.prompt_stores.items()}
        self._cache_size = settings.prompt_cache_size
        self._cache: OrderedDict[tuple[str, str, str], LoadedTemplate] = OrderedDict()
        self._compiled: OrderedDict[str, jinja2.Template] = OrderedDict()
        self.env = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False,
                                                 keep_trailing_newline=True)
        # Jinja's tojson escapes <, >, & and ' for HTML; a prompt wants plain JSON.
        self.env.filters["tojson"] = lambda value, indent=None: json.dumps(value, indent=indent,
                                                                           ensure_ascii=False)

    async def load(self, reference: str) -> LoadedTemplate:
        """The template a reference pins (cached); PromptError if it is missing or its digest differs."""
        ref = PromptRef.parse(reference)
        key = (ref.store, ref.name, ref.version)
        cached = self._cache.get(key)
        if cached is None:
            store = self.stores.get(ref.store)
            if store is None:
                known = ", ".join(sorted(self.stores)) or "none is configured (prompt_stores)"
                raise PromptError(f"prompt reference {reference!r} names the store {ref.store!r}; stores: {known}")
            data = await store.fetch(ref.name, ref.version)
            try:
                source = data.decode("utf-8")
            except UnicodeDecodeError:
                raise PromptError(f"prompt {ref} is not UTF-8 text") from None
            cached = LoadedTemplate(ref, source, hashlib.sha256(data).hexdigest())
            if self._cache_size:
                self._cache[key] = cached
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        if ref.sha256 is not None and ref.sha256 != cached.sha256:
            raise PromptError(f"prompt {ref} has sha256 {cached.sha256}, but the reference pins {ref.sha256}: "
                              "the template was changed in place; publish a new version instead")
        return LoadedTemplate(ref, cached.source, cached.sha256)

    async def publish(self, store: str, name: str, source: str, *, after: str | None = None) -> PromptRef:
        """Write `source` as the next free version `vN` of `name` in `store` and return its reference.

        N is one more than the highest numbered version the store lists and than `after` (the
        version it was edited from); a version taken meanwhile is skipped, never overwritten. The
        template must compile (PromptError with the line otherwise), so a broken one is not published.
        """
        target = self.stores.get(store)
        if target is None:
            known = ", ".join(sorted(self.stores)) or "none is configured (prompt_stores)"
            raise PromptError(f"no prompt store named {store!r}; stores: {known}")
        self._compile(source, f"prompt {name}")
        numbers = [int(m[1]) for v in [*(await target.versions(name)), after or ""] if (m := _NUMBERED.match(v))]
        number = max(numbers, default=0) + 1
        for candidate in range(number, number + _PUBLISH_ATTEMPTS):
            ref = PromptRef(store, name, f"v{candidate}")
            try:
                await target.create(name, ref.version, source.encode("utf-8"))
            except PromptVersionExists:
                continue
            return ref
        raise PromptError(f"no free version of prompt {name} in v{number}..v{number + _PUBLISH_ATTEMPTS - 1} "
                          f"at {target.where()}")

    def render(self, source: str, variables: dict[str, Any], *, what: str) -> str:
        """Render a template with the variables; PromptError says which template and why."""
        template = self._compile(source, what)
        pieces: list[str] = []
        size = 0
        try:
            for piece in template.generate(**variables):
                pieces.append(piece)
                size += len(piece)
                if size > self.max_chars:
                    raise PromptError(f"{what} renders to more than {self.max_chars} characters "
                                      "(max_prompt_chars)")
        except jinja2.UndefinedError as exc:
            raise PromptError(f"{what}: {exc.message} (give it in Variables)") from None
        except SecurityError as exc:
            raise PromptError(f"{what}: not allowed in the template sandbox: {exc}") from None
        except jinja2.TemplateError as exc:
            raise PromptError(f"{what}: {type(exc).__name__}: {exc}") from None
        except PromptError:
            raise
        except Exception as exc:  # e.g. a filter applied to the wrong type: a template fault, not a crash
            raise PromptError(f"{what}: {type(exc).__name__}: {exc}") from None
        return "".join(pieces)

    def _compile(self, source: str, what: str) -> jinja2.Template:
        digest = hashlib.sha256(source.encode()).hexdigest()
        template = self._compiled.get(digest)
        if template is not None:
            self._compiled.move_to_end(digest)
            return template
        try:
            template = self.env.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise PromptError(f"{what} line {exc.lineno}: {exc.message}") from None
        self._compiled[digest] = template
        while len(self._compiled) > max(self._cache_size, 16):
            self._compiled.popitem(last=False)
        return template

    async def aclose(self) -> None:
        await asyncio.gather(*(store.aclose() for store in self.stores.values()))

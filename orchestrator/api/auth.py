"""API authentication: bearer tokens with roles, hashed at rest, revocable without a restart.

A token is `baton_<id>_<secret>`: the id finds its entry in the token file, the secret is checked
against a PBKDF2-HMAC-SHA256 hash (salted, per token), so the file alone lets nobody call the API.
The file (`.baton/api-tokens.json`, or BATON_API_TOKENS_FILE) is written by `baton tokens
create|revoke` and re-read by the API whenever its modification time or size changes, so a
revocation takes effect on the next request. Verified tokens are cached in memory (by the
SHA-256 of the token) only until the file changes, so PBKDF2 runs once per token per file state.

Roles: `admin` implies every role, `operator` and `reviewer` each imply `viewer`. A request
carries its token as `Authorization: Bearer <token>`, or (for the pages) as the `baton_token`
cookie that a visit to any page with `?token=<token>` sets.

With OIDC configured (`orchestrator.api.oidc`), an identity provider's JWTs are accepted as well,
with the same roles; the JWT's subject is the identity's name.

Review queues: an identity may be limited to the reviews of some state machines (`queues`, the
registered names; `baton tokens create --queue NAME`, or a JWT claim). A review belongs to the
queue of the state machine its execution runs, whatever version or alias the start named; an
identity without a limit (`queues` None) reviews every queue. See `Identity.may_review`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterable
from typing import Any, Literal, Protocol, get_args

from fastapi import Request
from pydantic import BaseModel, ConfigDict, ValidationError

from schemas.errors import BatonError

Role = Literal["viewer", "operator", "reviewer", "admin"]
ROLES: tuple[str, ...] = get_args(Role)
IMPLIES: dict[str, frozenset[str]] = {
    "viewer": frozenset({"viewer"}),
    "operator": frozenset({"operator", "viewer"}),
    "reviewer": frozenset({"reviewer", "viewer"}),
    "admin": frozenset(ROLES),
}
COOKIE = "baton_token"
PREFIX = "baton_"
_ITERATIONS = 100_000
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.@")
# A queue meaning every queue (an OIDC queue map may grant it). `*` cannot be a state machine name.
ALL_QUEUES = "*"


def default_tokens_path() -> Path:
    """BATON_API_TOKENS_FILE, else `api-tokens.json` in BATON_STATE_DIR (default `.baton`)."""
    explicit = os.environ.get("BATON_API_TOKENS_FILE")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("BATON_STATE_DIR", ".baton")) / "api-tokens.json"


class AuthError(BatonError):
    """Refused: `status` 401 (no or unknown token) or 403 (the token's role is not enough)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class TokenStoreError(BatonError):
    """A token could not be created or revoked (bad name or role, a duplicate, unknown name)."""


@dataclass(frozen=True)
class Identity:
    """Who made a request: the token's name (a JWT's subject) and role.

    `other_roles`: an OIDC user may hold several roles (operator and reviewer); `role` is the
    strongest of them. `queues`: the state machines whose reviews it may see and decide; None
    means all of them (an empty set, none).
    """

    name: str
    role: str
    other_roles: frozenset[str] = frozenset()
    queues: frozenset[str] | None = None

    def may(self, role: str) -> bool:
        return any(role in IMPLIES.get(held, frozenset()) for held in (self.role, *self.other_roles))

    def may_review(self, state_machine: str | None) -> bool:
        """Whether a review of an execution of `state_machine` (its registered name, None when it
        is not known) is in this identity's queues."""
        return in_queues(self.queues, state_machine)


def in_queues(queues: frozenset[str] | None, state_machine: str | None) -> bool:
    """The matching rule: exact registered name, or no limit at all (None, or `*` among them).

    An unknown state machine matches only without a limit, so a limited reviewer cannot tell an
    execution of another queue from one that does not exist.
    """
    if queues is None or ALL_QUEUES in queues:
        return True
    return state_machine is not None and state_machine in queues


def check_queues(queues: Iterable[str]) -> list[str]:
    """Queue names for a token, sorted and without duplicates; TokenStoreError for anything that is
    not a state machine name, such as `approval:live` (a queue holds every version and alias)."""
    from orchestrator.registry.errors import InvalidName
    from orchestrator.registry.model import check_name

    checked = set()
    for queue in queues:
        try:
            checked.add(check_name(queue))
        except InvalidName as exc:
            raise TokenStoreError(f"{exc}; a queue is a state machine's registered name, without :VERSION "
                                  "or :ALIAS (it holds the reviews of every version and alias)") from None
    return sorted(checked)


class TokenEntry(BaseModel):
    """One token of the file. `queues` came later: an entry without it (an older file) is not
    limited; unknown fields are ignored here and kept when the file is rewritten."""

    model_config = ConfigDict(extra="ignore")

    name: str | None = None
    role: str = ""
    salt: str = ""
    hash: str = ""
    created: str | None = None
    queues: list[str] | None = None


def _hash(secret: str, salt: bytes) -> str:
    return hashlib.pbkdf2_hmac("sha256", secret.encode(), salt, _ITERATIONS).hex()


class TokenStore:
    """The token file: `{"tokens": {id: {name, role, salt, hash, created, queues?}}}` (no secret in it)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_tokens_path()
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._entries: dict[str, dict[str, Any]] = {}
        self._verified: dict[str, Identity] = {}  # sha256(token) -> identity, valid for this stamp

    # ---------------------------------------------------------------- reading

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        tokens = data.get("tokens", {}) if isinstance(data, dict) else {}
        return tokens if isinstance(tokens, dict) else {}

    def _refresh(self) -> None:
        """Re-read the file when it changed since the last look (a revocation needs no restart)."""
        try:
            st = self.path.stat()
            stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp != self._stamp or stamp is None:
            self._entries = self._read()
            self._verified.clear()
            self._stamp = stamp

    def verify(self, token: str) -> Identity | None:
        """The identity of a valid, unrevoked token; None otherwise."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        with self._lock:
            self._refresh()
            cached = self._verified.get(digest)
            if cached is not None:
                return cached
            if not token.startswith(PREFIX):
                return None
            token_id, _, secret = token[len(PREFIX):].partition("_")
            raw = self._entries.get(token_id)
            if raw is None or not secret:
                return None
            try:  # a damaged entry (say, queues that are not a list of names) lets nobody in
                entry = TokenEntry.model_validate(raw)
                salt = bytes.fromhex(entry.salt)
            except (ValidationError, ValueError):
                return None
            if not entry.hash or not hmac.compare_digest(_hash(secret, salt), entry.hash):
                return None
            identity = Identity(entry.name or token_id, entry.role,
                                queues=frozenset(entry.queues) if entry.queues is not None else None)
            self._verified[digest] = identity
            return identity

    def list(self) -> list[dict[str, Any]]:
        """Every token's name, role, creation time and queues (None: all), never a secret or hash."""
        listed = []
        for raw in self._read().values():
            try:
                entry = TokenEntry.model_validate(raw)
            except ValidationError:  # shown, so that it can be revoked; it verifies nothing
                fields = raw if isinstance(raw, dict) else {}
                listed.append({"name": fields.get("name"), "role": fields.get("role"),
                               "created": fields.get("created"), "queues": None, "unusable": True})
                continue
            listed.append({"name": entry.name, "role": entry.role, "created": entry.created, "queues": entry.queues})
        return sorted(listed, key=lambda e: str(e["name"]))

    # ---------------------------------------------------------------- writing

    def _write(self, entries: dict[str, dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"tokens": entries}, handle, indent=2)
        os.replace(temporary, self.path)

    def create(self, name: str, role: str, queues: Iterable[str] | None = None) -> str:
        """A new token for `name` with `role`; the token is returned once and stored only hashed.

        `queues` (state machine names) limits the reviews it may see and decide; None or empty:
        every queue.
        """
        if role not in ROLES:
            raise TokenStoreError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
        if not name or len(name) > 64 or not set(name) <= _NAME_CHARS:
            raise TokenStoreError("a token name is 1 to 64 letters, digits or -_.@")
        limited = check_queues(queues or ())
        if limited and "reviewer" not in IMPLIES[role]:
            raise TokenStoreError(f"a {role} token cannot review: queues are for reviewer and admin tokens")
        entries = self._read()
        if any(e.get("name") == name for e in entries.values()):
            raise TokenStoreError(f"a token named {name!r} exists; revoke it first")
        token_id, secret, salt = secrets.token_hex(6), secrets.token_urlsafe(32), secrets.token_bytes(16)
        entry: dict[str, Any] = {"name": name, "role": role, "salt": salt.hex(), "hash": _hash(secret, salt),
                                 "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        if limited:  # no key at all for an unlimited token: the file reads as it did before queues
            entry["queues"] = limited
        entries[token_id] = entry
        self._write(entries)
        return f"{PREFIX}{token_id}_{secret}"

    def revoke(self, name: str) -> None:
        """Delete the token called `name`; the API refuses it from its next request on."""
        entries = self._read()
        kept = {k: e for k, e in entries.items() if e.get("name") != name}
        if len(kept) == len(entries):
            raise TokenStoreError(f"no token named {name!r}")
        self._write(kept)


def token_of(request: Request) -> str | None:
    """The request's token: `Authorization: Bearer`, else `?token=` (page login), else the cookie."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        return value.strip() if scheme.lower() == "bearer" and value.strip() else None
    return request.query_params.get("token") or request.cookies.get(COOKIE) or None


class JwtVerifier(Protocol):
    """Verifies an identity provider's JWT (`orchestrator.api.oidc.OidcVerifier`)."""

    async def verify(self, token: str) -> Identity:
        """The JWT's identity; raise AuthError (401) when it is not valid."""
        ...


def looks_like_jwt(token: str) -> bool:
    """A JWT is three dot-separated parts; Baton's own tokens (`baton_<id>_<secret>`) have no dot."""
    return not token.startswith(PREFIX) and token.count(".") == 2


class TokenAuthorizer:
    """The API's Authorizer with tokens: 401 without a valid token, 403 when its role is not enough.

    Baton's tokens are checked against `store`; with `oidc`, an identity provider's JWTs are
    accepted too. On success the identity is kept in `request.state.identity` (the review routes
    record it).
    """

    def __init__(self, store: TokenStore | None, oidc: JwtVerifier | None = None) -> None:
        self.store = store
        self.oidc = oidc

    async def __call__(self, request: Request, role: str) -> None:
        token = token_of(request)
        if token is None:
            raise AuthError(401, "Unauthorized", "a bearer token is required (Authorization: Bearer <token>; "
                                                  "create one with `baton tokens create`)")
        if self.oidc is not None and looks_like_jwt(token):
            identity: Identity | None = await self.oidc.verify(token)
        else:
            identity = self.store.verify(token) if self.store is not None else None
        if identity is None:
            raise AuthError(401, "Unauthorized", "the token is unknown or revoked")
        if not identity.may(role):
            held = f"role {identity.role!r}" if identity.role else "no Baton role"
            raise AuthError(403, "Forbidden", f"the token {identity.name!r} has {held}; this needs {role!r}")
        request.state.identity = identity


def identity_of(request: Request) -> Identity | None:
    """The authenticated identity of the request, or None when the API runs without auth."""
    identity = getattr(request.state, "identity", None)
    return identity if isinstance(identity, Identity) else None

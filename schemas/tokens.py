"""Task tokens: unguessable, verifiable (HMAC-signed), naming the execution and the task they answer.

A token is `<payload>.<signature>`, both base64url: the payload is the JSON pair
[execution_id, task_id]; the signature an HMAC-SHA256 of it with the orchestrators' shared
secret. A forged token fails verification; a replayed one names a task no longer awaited, which
the decider ignores. The format is a wire contract: tokens in flight must verify after an upgrade.

A step result carries a `result_key`, an HMAC of the task and the service its command went to.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from schemas.errors import BatonError


class InvalidToken(BatonError, ValueError):
    """The token is malformed or its signature does not match."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    """Signs and verifies task tokens and result keys with the orchestrators' shared secret."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the task-token secret must be at least 16 bytes")
        self._secret = secret

    def _signature(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, payload.encode(), hashlib.sha256).digest())

    def sign(self, execution_id: str, task_id: str) -> str:
        payload = _b64(json.dumps([execution_id, task_id], separators=(",", ":")).encode())
        return f"{payload}.{self._signature(payload)}"

    def result_key(self, execution_id: str, task_id: str, service: str) -> str:
        """The proof a step result must carry: an HMAC of the task and the service its command
        went to. Derived, not stored, so a restored or replayed decision issues the same key.
        Its input starts with a NUL-separated label no task token's base64 payload can contain,
        so neither kind of signature can stand for the other."""
        message = b"\0".join((b"result", execution_id.encode(), task_id.encode(), service.encode()))
        return _b64(hmac.new(self._secret, message, hashlib.sha256).digest())

    def verify_result_key(self, key: str | None, execution_id: str, task_id: str, service: str) -> bool:
        if not key:
            return False
        expected = self.result_key(execution_id, task_id, service).encode()
        return hmac.compare_digest(key.encode(errors="replace"), expected)

    def verify(self, token: str) -> tuple[str, str]:
        """Return (execution_id, task_id), or raise InvalidToken."""
        payload, _, signature = token.partition(".")
        # Compared as bytes: a forged token may hold any characters (compare_digest refuses non-ASCII str).
        expected = self._signature(payload).encode()
        if not payload or not signature or not hmac.compare_digest(signature.encode(errors="replace"), expected):
            raise InvalidToken("the task token's signature does not match")
        try:
            execution_id, task_id = json.loads(_unb64(payload))
        except (ValueError, TypeError):
            raise InvalidToken("the task token is malformed") from None
        if not isinstance(execution_id, str) or not isinstance(task_id, str):
            raise InvalidToken("the task token is malformed")
        return execution_id, task_id


def execution_of(token: str) -> str:
    """The execution a token names, without verifying it (for choosing the Kafka key when
    publishing a decision; the orchestrator verifies)."""
    try:
        execution_id, _ = json.loads(_unb64(token.partition(".")[0]))
    except (ValueError, TypeError):
        raise InvalidToken("the task token is malformed") from None
    return str(execution_id)

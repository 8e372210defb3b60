"""Keeping known secret values out of what a step returns, its errors and its logs.

A step that holds credentials (an HTTP connection's password, an LLM provider's key) passes
every text it got from the outside (a response body echoed into a cause, a provider's error
message) through a `Redactor` before it leaves the service. Besides the plain value it removes
the value's base64 forms: an API that echoes `Authorization: Basic …`, or any base64 blob with the
secret inside, would otherwise carry it out in an encoding a plain search does not find.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterable
from typing import Any, Final

REDACTED: Final = "***"
_MIN_CORE = 8  # shorter base64 fragments could match ordinary text by chance


def base64_cores(secret: str) -> set[str]:
    """The parts of the base64 text that any encoding of data containing `secret` has.

    Base64 maps 3 bytes to 4 characters, so how `secret` is encoded depends on where it starts
    modulo 3; for each of the three alignments the characters that depend on the secret alone are
    the same whatever surrounds it. Both alphabets (standard and URL-safe) are returned.
    """
    raw = secret.encode()
    cores: set[str] = set()
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw).decode().rstrip("=")
        start = -(-4 * shift // 3)  # ceil: the first character no prefix bit reaches
        end = 4 * (shift + len(raw)) // 3  # floor: the last character the secret fills alone
        core = encoded[start:end]
        if len(core) >= _MIN_CORE:
            cores |= {core, core.replace("+", "-").replace("/", "_")}
    return cores


class Redactor:
    """Replaces known secret values, and their base64 forms, by "***" in text and JSON values
    (keys included).

    Values shorter than `min_length` are left alone: replacing a 3-letter password everywhere would
    mangle ordinary text, and a secret that short is not much of one.
    """

    def __init__(self, secrets: Iterable[str] = (), min_length: int = 6) -> None:
        self._min = min_length
        self._secrets: set[str] = set()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        for value in secrets:
            if len(value) >= self._min:
                self._secrets.add(value)
                self._secrets |= base64_cores(value)

    def text(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):  # longest first: no partial leftovers
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def value(self, value: Any) -> Any:
        if not self._secrets:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(item) for item in value]
        if isinstance(value, dict):
            return {self.text(key): self.value(item) for key, item in value.items()}
        return value


def quiet_http_client_logs() -> None:
    """Keep httpx and httpcore at WARNING unless an operator set their levels on purpose.

    httpx logs each request's full URL at INFO (a connection's query parameters may be secret) and
    httpcore each response's headers at DEBUG (an API may echo a credential in one), and neither
    goes through a `Redactor`.
    """
    for name in ("httpx", "httpcore"):
        if logging.getLogger(name).level == logging.NOTSET:
            logging.getLogger(name).setLevel(logging.WARNING)

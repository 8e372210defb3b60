"""Every error the LLM step can raise, as ASL error names a definition can Retry and Catch.

One exception per ASL error name; each carries `error` (the name the task fails with) and `cause`
(one line for a person: what went wrong, where, and what to do). Secrets never appear in a cause.

    Baton.LLM.RateLimited        the provider said 429 / rate limit (cause names Retry-After)
    Baton.LLM.Timeout            no complete answer within the provider's `timeout_seconds`
    Baton.LLM.Unavailable        connection refused or reset, 5xx, provider overloaded
    Baton.LLM.ContentFiltered    the provider refused or cut the answer for its content policy
    Baton.LLM.InvalidResponse    not the shape expected, or ResponseFormat json that does not
                                 parse or does not match JsonSchema
    Baton.LLM.RequestRejected    any other 4xx: bad credentials, unknown model, prompt too long
    Baton.LLM.InvalidParameters  the Task's Parameters are wrong (unknown provider, bad types)
    Baton.LLM.PromptError        a template does not render, or a PromptRef cannot be loaded
    Baton.LLM.InvalidToolArguments  the model called a tool with arguments that are not JSON or
                                 fail the tool's InputSchema (or a tool the Task did not offer)

Retry the first three (transient); Catch the rest to a fallback (e.g. another model).
"""

from __future__ import annotations

from typing import Any, ClassVar

from schemas.errors import BatonError


class LLMError(BatonError):
    """Base of the LLM step's errors: `error` is the ASL error name, `cause` the explanation."""

    error: ClassVar[str] = "Baton.LLM.Error"

    def __init__(self, cause: str, *, metadata: dict[str, Any] | None = None) -> None:
        super().__init__(cause)
        self.cause = cause
        # What is known about the failed call (provider, model, rendered prompt, latency): for the
        # result's metadata once the step service records it with failures.
        self.metadata: dict[str, Any] = dict(metadata or {})


class RateLimited(LLMError):
    error = "Baton.LLM.RateLimited"

    def __init__(self, cause: str, *, retry_after_seconds: float | None = None,
                 metadata: dict[str, Any] | None = None) -> None:
        super().__init__(cause, metadata=metadata)
        self.retry_after_seconds = retry_after_seconds


class ProviderTimeout(LLMError):
    error = "Baton.LLM.Timeout"


class ProviderUnavailable(LLMError):
    error = "Baton.LLM.Unavailable"


class ContentFiltered(LLMError):
    error = "Baton.LLM.ContentFiltered"


class InvalidResponse(LLMError):
    error = "Baton.LLM.InvalidResponse"


class RequestRejected(LLMError):
    error = "Baton.LLM.RequestRejected"


class InvalidParameters(LLMError):
    error = "Baton.LLM.InvalidParameters"


class PromptError(LLMError):
    error = "Baton.LLM.PromptError"


class InvalidToolArguments(LLMError):
    error = "Baton.LLM.InvalidToolArguments"


class PromptVersionExists(PromptError):
    """A prompt store already holds the version being written: versions are never overwritten."""


ERROR_NAMES: tuple[str, ...] = tuple(
    kind.error for kind in (RateLimited, ProviderTimeout, ProviderUnavailable, ContentFiltered,
                            InvalidResponse, RequestRejected, InvalidParameters, PromptError, InvalidToolArguments))

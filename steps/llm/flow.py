"""Flow control for LLM calls: limits per model, fair shares per tenant, priorities (no I/O).

One `Gate` per limited model admits calls under three limits, as a provider counts them:
`max_concurrency` (calls in flight), `requests_per_minute` and `tokens_per_minute` (counted over a
sliding window of `window_seconds`, scaled: a 1 s window admits rpm/60 a second). Among the calls
waiting at a gate, the highest `Priority` goes first; within a priority, tenants share the model
by start-time fair queuing (each admission advances the tenant's virtual time by 1/weight, and a
tenant that was idle starts at the current virtual time, so it gets no credit for being idle),
and calls of one tenant go in arrival order. `tenant_max_concurrency` caps one tenant's share.

The gate is exact only where one process admits every call of a model: the step service keys
such commands by model (schemas/flow.py), so the replica owning that partition owns the gate.
A request counts in the window from its admission until `window_seconds` after it ended (not after
it began), so a provider that counts requests by arrival never sees more than the limit, whatever
the network delay. A provider's 429 pauses the gate for its Retry-After (`back_off`).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

Clock = Callable[[], float]


def _no_strings(value: Any) -> Any:
    # YAML turns `"8"` into a string; pydantic would coerce it silently. A limit is a number.
    if isinstance(value, str | bool):
        raise ValueError(f"a limit must be a number, not {value!r}")
    return value


class FlowLimit(BaseModel):
    """One model's limits (each optional: None means unlimited)."""

    model_config = ConfigDict(extra="forbid")

    max_concurrency: int | None = Field(default=None, ge=1)
    requests_per_minute: int | None = Field(default=None, ge=1)
    tokens_per_minute: int | None = Field(default=None, ge=1)

    _numbers = field_validator("*", mode="before")(_no_strings)


class FlowControlSettings(BaseModel):
    """`flow_control` in the LLM service's config (steps/llm/config.py); off while empty."""

    model_config = ConfigDict(extra="forbid")

    # By "provider/model", "model", or "*" (every model without limits of its own).
    limits: dict[str, FlowLimit] = {}
    tenant_max_concurrency: int | None = Field(default=None, ge=1)  # per tenant, per model
    tenant_weights: dict[str, float] = {}  # a tenant's share relative to others (default 1)
    default_tenant: str = "default"  # for a Task without FlowControl.Tenant
    # The span the per-minute limits are counted over; shorter windows scale the limits down
    # (rpm * window / 60 per window): for tests, and for providers that enforce per second.
    window_seconds: float = Field(default=60.0, gt=0)
    retry_after_seconds: float = Field(default=1.0, gt=0)  # a 429 without Retry-After pauses this long
    max_rate_limit_retries: int = Field(default=3, ge=0)  # 429s answered by waiting, before the task fails
    max_queued: int = Field(default=10_000, ge=1)  # commands read ahead and held (uncommitted) per replica
    default_max_tokens: int = Field(default=512, ge=1)  # the estimate of a call without MaxTokens

    _numbers = field_validator("tenant_max_concurrency", "window_seconds", "retry_after_seconds",
                               "max_rate_limit_retries", "max_queued", "default_max_tokens",
                               mode="before")(_no_strings)

    @field_validator("tenant_weights", mode="before")
    @classmethod
    def _weights(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for tenant, weight in value.items():
                if isinstance(weight, str | bool) or not isinstance(weight, int | float) or weight <= 0:
                    raise ValueError(f"tenant_weights.{tenant}: a weight must be a number above 0, not {weight!r}")
        return value

    @property
    def enabled(self) -> bool:
        return bool(self.limits) or self.tenant_max_concurrency is not None

    def limit_for(self, provider: str, model: str) -> FlowLimit | None:
        return self.limits.get(f"{provider}/{model}") or self.limits.get(model) or self.limits.get("*")


@dataclass
class _Waiter:
    tenant: str
    priority: int
    tokens: int
    since: float
    admitted: asyncio.Future[Permit]


@dataclass
class _Tenant:
    weight: float
    virtual: float = 0.0
    running: int = 0
    waiting: dict[int, deque[_Waiter]] = field(default_factory=dict)  # by priority


class Permit:
    """An admitted call; `release` it (with the tokens it really used) when the call ends."""

    def __init__(self, gate: Gate, tenant: _Tenant, tokens: int, waited: float) -> None:
        self._gate, self._tenant, self.tokens, self.waited = gate, tenant, tokens, waited
        self._released = False

    def release(self, used_tokens: int | None = None) -> None:
        if not self._released:
            self._released = True
            self._gate._release(self, self.tokens if used_tokens is None else used_tokens)


class Gate:
    """Admission to one model (see the module docstring). Not thread-safe: one event loop."""

    def __init__(self, name: str, limit: FlowLimit, settings: FlowControlSettings, clock: Clock = time.monotonic,
                 on_throttled: Callable[[str, str], None] | None = None) -> None:
        self.name = name
        self.limit = limit
        self.settings = settings
        self._clock = clock
        self._on_throttled = on_throttled or (lambda tenant, reason: None)
        scale = settings.window_seconds / 60.0
        self._max_requests = max(1, int(limit.requests_per_minute * scale)) if limit.requests_per_minute else None
        self._max_tokens = max(1, int(limit.tokens_per_minute * scale)) if limit.tokens_per_minute else None
        self._tenants: dict[str, _Tenant] = {}
        self.running = 0
        self._running_tokens = 0
        self._ended: deque[tuple[float, int]] = deque()  # (ended at, tokens), in end order
        self._ended_tokens = 0
        self._paused_until = 0.0
        self._last_virtual = 0.0
        self._wake: asyncio.TimerHandle | None = None
        self._wake_at = 0.0
        self.waiting = 0

    async def admit(self, tenant_name: str, priority: int = 0, tokens: int = 1) -> Permit:
        """Wait for a turn; cancelling the wait leaves the queue (nothing is counted)."""
        tenant = self._tenant(tenant_name)
        now = self._clock()
        if self.waiting == 0 and self._blocked(tenant, tokens, now) is None:
            return self._admitted(tenant, tokens, 0.0)  # the fast path: nobody waits, nothing limits
        if not any(tenant.waiting.values()):
            tenant.virtual = max(tenant.virtual, self._last_virtual)  # no credit for idle time
        waiter = _Waiter(tenant_name, priority, tokens, now, asyncio.get_running_loop().create_future())
        tenant.waiting.setdefault(priority, deque()).append(waiter)
        self.waiting += 1
        self._on_throttled(tenant_name, self._blocked(tenant, tokens, now) or "queue")
        self._pump()
        try:
            return await waiter.admitted
        except asyncio.CancelledError:
            if waiter.admitted.done() and not waiter.admitted.cancelled():
                waiter.admitted.result().release(0)  # admitted as it was cancelled: give it back
            else:
                tenant.waiting[priority].remove(waiter)
                self.waiting -= 1
                self._pump()
            raise

    def back_off(self, seconds: float) -> None:
        """The provider said 429: admit nothing for `seconds`."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    # --- handing the window to the model's next owner ------------------------------------------
    # A new owner of the model's partition (after a rebalance or a crash) must count the requests
    # its predecessor made within the window, or the provider would see up to twice the limit.
    # They travel in the partition's commit metadata as wall-clock buckets (rounded later, so kept
    # longer: conservative); clocks of the hosts are assumed in sync to well under a window.

    def window_snapshot(self, wall_now: float) -> list[tuple[float, int, int]]:
        """(wall time a bucket ends, requests, tokens): ended requests in the window and running
        ones (as if ending now), in at most 20 buckets."""
        now = self._clock()
        self._prune(now)
        step = self.settings.window_seconds / 20
        buckets: dict[float, list[int]] = {}
        entries = [*self._ended, (now, self._running_tokens)] if self.running else list(self._ended)
        counts = [*([1] * len(self._ended)), self.running] if self.running else [1] * len(self._ended)
        for (ended, tokens), count in zip(entries, counts, strict=True):
            wall = wall_now - (now - ended)
            key = round((wall // step + 1) * step, 3)
            bucket = buckets.setdefault(key, [0, 0])
            bucket[0] += count
            bucket[1] += tokens
        return [(at, n, tokens) for at, (n, tokens) in sorted(buckets.items())]

    def seed(self, snapshot: list[tuple[float, int, int]], wall_now: float) -> None:
        """Count a predecessor's requests (`window_snapshot`) in this gate's window."""
        now = self._clock()
        entries = list(self._ended)
        for wall_end, count, tokens in snapshot:
            ended = now - (wall_now - wall_end)
            if ended > now - self.settings.window_seconds and count > 0:
                entries += [(ended, tokens // count)] * count
        entries.sort()
        self._ended = deque(entries)
        self._ended_tokens = sum(tokens for _, tokens in entries)

    # --- internals -------------------------------------------------------------------------------

    def _tenant(self, name: str) -> _Tenant:
        tenant = self._tenants.get(name)
        if tenant is None:
            tenant = self._tenants[name] = _Tenant(self.settings.tenant_weights.get(name, 1.0))
        return tenant

    def _prune(self, now: float) -> None:
        horizon = now - self.settings.window_seconds
        while self._ended and self._ended[0][0] <= horizon:
            self._ended_tokens -= self._ended.popleft()[1]

    def _blocked(self, tenant: _Tenant, tokens: int, now: float) -> str | None:
        """Why a call of `tenant` cannot start now (None: it can)."""
        if now < self._paused_until:
            return "retry_after"
        if self.limit.max_concurrency is not None and self.running >= self.limit.max_concurrency:
            return "concurrency"
        cap = self.settings.tenant_max_concurrency
        if cap is not None and tenant.running >= cap:
            return "tenant_concurrency"
        self._prune(now)
        if self._max_requests is not None and self.running + len(self._ended) >= self._max_requests:
            return "requests"
        if self._max_tokens is not None and self._running_tokens + self._ended_tokens + tokens > self._max_tokens \
                and (self.running or self._ended):  # one call larger than the window still runs, alone
            return "tokens"
        return None

    def _admitted(self, tenant: _Tenant, tokens: int, waited: float) -> Permit:
        self.running += 1
        self._running_tokens += tokens
        tenant.running += 1
        tenant.virtual += 1.0 / tenant.weight
        self._last_virtual = tenant.virtual
        return Permit(self, tenant, tokens, waited)

    def _release(self, permit: Permit, used_tokens: int) -> None:
        self.running -= 1
        self._running_tokens -= permit.tokens
        permit._tenant.running -= 1
        self._ended.append((self._clock(), used_tokens))
        self._ended_tokens += used_tokens
        self._pump()

    def _next(self, now: float) -> tuple[_Tenant, _Waiter] | None:
        """The waiter to admit next: highest priority, then the tenant furthest behind its share."""
        best: tuple[tuple[int, float, float], _Tenant, _Waiter] | None = None
        for tenant in self._tenants.values():
            for priority, queue in tenant.waiting.items():
                if not queue:
                    continue
                rank = (-priority, tenant.virtual, queue[0].since)
                if (best is None or rank < best[0]) and self._blocked(tenant, queue[0].tokens, now) \
                        not in ("tenant_concurrency",):
                    best = (rank, tenant, queue[0])
        return None if best is None else (best[1], best[2])

    def _pump(self) -> None:
        """Admit waiters while the limits allow; otherwise wake up when the window next frees."""
        while self.waiting:
            now = self._clock()
            chosen = self._next(now)
            if chosen is None:
                return  # every waiting tenant is at its own cap: a release pumps again
            tenant, waiter = chosen
            if self._blocked(tenant, waiter.tokens, now) is not None:
                self._schedule_wake(now)
                return
            tenant.waiting[waiter.priority].popleft()
            self.waiting -= 1
            waiter.admitted.set_result(self._admitted(tenant, waiter.tokens, now - waiter.since))

    def _schedule_wake(self, now: float) -> None:
        # Concurrency frees on a release (which pumps); time-based limits free at a known moment.
        moments = [self._paused_until] if now < self._paused_until else []
        if self._ended:
            moments.append(self._ended[0][0] + self.settings.window_seconds)
        if not moments:
            return
        at = min(moments)
        if self._wake is not None:
            if self._wake_at <= at:
                return  # an earlier wake-up is already due
            self._wake.cancel()
        self._wake_at = at
        self._wake = asyncio.get_running_loop().call_later(max(0.0, at - now) + 0.001, self._woken)

    def _woken(self) -> None:
        self._wake = None
        self._pump()

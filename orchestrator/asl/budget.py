"""Budgets: what an execution, and one LLM Task state within it, may spend (tokens and USD).

Pure bookkeeping on the execution's `Ledger` (part of `ExecutionState`, so it is stored on the
state topic with the rest and survives a restart exactly once). The Task state calls `gate`
before it dispatches an LLM call and `settle` when the call's result, failure or timeout
arrives; the decider wakes the runs that waited (`wake`). See docs/budgets.md.

The bound. "Check before, charge after" alone lets a Map of N concurrent calls all pass the
check and overspend by N calls. So each call reserves an estimate at dispatch (the Task's
MaxTokens plus its Parameters' size, at least the largest call seen so far; cost at the highest
price per token seen so far) and a call is admitted only while what is spent plus what is
reserved plus its estimate fits. A call that does not fit waits for the calls in flight to
settle; with nothing in flight it is admitted if anything is left (so one call may end past the
limit), and refused (`Baton.LLM.BudgetExceeded`) once the spend has reached the limit. Hence the
final spend is at most the limit plus one call, plus what calls in flight spent beyond their
estimates. Until a price is known (no call has settled yet), a cost budget admits one call at a
time.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestrator.asl.errors import Problem

BUDGET_EXCEEDED = "Baton.LLM.BudgetExceeded"
INVALID_BUDGET = "Baton.LLM.InvalidBudget"
TASK_PARAMETER = "Budget"  # an LLM Task's Parameters/Arguments field, read (and removed) by the decider
DEFINITION_FIELD = "Baton"  # the top-level extension object of a definition: {"Baton": {"Budget": {...}}}
CHARS_PER_TOKEN = 4  # the usual rule of thumb for English text, for the input part of an estimate


class BudgetError(ValueError):
    """A budget that is not an object of non-negative MaxTokens (integer) and MaxCost (number)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems  # (field, what is wrong)
        super().__init__("; ".join(f"{where}: {what}" if where else what for where, what in problems))


class Budget(BaseModel):
    """The limits: tokens (input plus output) and cost in USD, either or both."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True, allow_inf_nan=False, frozen=True)

    max_tokens: int | None = Field(default=None, alias="MaxTokens", ge=0)
    max_cost: float | None = Field(default=None, alias="MaxCost", ge=0)

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)


def parse_budget(value: Any) -> Budget:
    """A budget from its JSON form; BudgetError says which field is wrong and how."""
    if not isinstance(value, dict):
        raise BudgetError([("", f'a budget is an object such as {{"MaxTokens": 20000, "MaxCost": 0.5}}, '
                                f"not {json.dumps(value)[:80]}")])
    try:
        return Budget.model_validate(value)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            if error["type"] == "extra_forbidden":
                problems.append((where, "unknown field; a budget has MaxTokens and MaxCost"))
            elif where == "MaxTokens":
                problems.append((where, f"must be a whole number of tokens >= 0, not {json.dumps(error['input'])}"))
            else:
                problems.append((where, f"must be a number of USD >= 0, not {json.dumps(error['input'])}"))
        raise BudgetError(problems) from None


def tighter(first: Budget | None, second: Budget | None) -> Budget | None:
    """Each limit the lower of the two: a start can tighten the definition's budget, not raise it."""
    if first is None or second is None:
        return first or second

    def low(a: Any, b: Any) -> Any:
        return b if a is None else a if b is None else min(a, b)

    return Budget(MaxTokens=low(first.max_tokens, second.max_tokens), MaxCost=low(first.max_cost, second.max_cost))


# ---------------------------------------------------------------- the ledger (persisted)


class Spend(BaseModel):
    tokens: int = 0
    cost_usd: float = 0.0
    calls: int = 0

    def add(self, tokens: int, cost: float) -> None:
        self.tokens += tokens
        self.cost_usd += cost
        self.calls += 1


class Reservation(BaseModel):
    """What a call in flight is expected to spend; `cost_usd` None: no price known yet."""

    state: str
    tokens: int
    cost_usd: float | None


class Waiter(BaseModel):
    """A run whose LLM call waits for calls in flight to settle (its estimate, to wake it in turn)."""

    run_id: str
    tokens: int
    cost_usd: float | None


class Ledger(BaseModel):
    """An execution's budget and spend: the limits, what settled calls cost in all and per Task
    state, the reservations of the calls in flight and the runs waiting for room."""

    limits: Budget | None = None
    spent: Spend = Field(default_factory=Spend)
    by_state: dict[str, Spend] = Field(default_factory=dict)
    reserved: dict[str, Reservation] = Field(default_factory=dict)  # task id -> reservation
    waiting: list[Waiter] = Field(default_factory=list)
    largest_call: int = 0  # tokens of the largest call settled: the least any estimate is
    cost_per_token: float | None = None  # the highest price per token seen; None until a call settled
    released: bool = False  # a reservation ended since the waiters were last woken
    refused: int = 0  # LLM calls refused (BudgetExceeded), and calls that waited: for the metrics
    waited: int = 0

    def view(self) -> dict[str, Any]:
        """The ledger as describe shows it."""
        out: dict[str, Any] = {"spent": _spend_view(self.spent),
                               "byState": {name: _spend_view(s) for name, s in self.by_state.items()},
                               "inFlight": len(self.reserved)}
        if self.limits is not None:
            out["limits"] = self.limits.as_json()
        return out


def _spend_view(spend: Spend) -> dict[str, Any]:
    return {"tokens": spend.tokens, "costUsd": round(spend.cost_usd, 10), "calls": spend.calls}


# ---------------------------------------------------------------- before a call, after it


def estimate(parameters: Any, ledger: Ledger) -> tuple[int, float | None]:
    """(tokens, cost) a call is expected to spend: its output bound (MaxTokens) plus its
    Parameters' size in tokens, at least the largest call settled; cost at the highest price seen."""
    text = json.dumps(parameters, ensure_ascii=False, default=str)
    tokens = max(len(text) // CHARS_PER_TOKEN + _max_output(parameters), ledger.largest_call)
    return tokens, None if ledger.cost_per_token is None else tokens * ledger.cost_per_token


def _max_output(parameters: Any) -> int:
    if not isinstance(parameters, dict):
        return 0
    for holder in (parameters, parameters.get("InferenceConfig"), parameters.get("Body")):
        if isinstance(holder, dict):
            for key in ("MaxTokens", "maxTokens", "max_tokens"):
                value = holder.get(key)
                if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                    return value
    return 0


Verdict = Literal["go", "wait"]


def gate(ledger: Ledger, state: str, task_limits: Budget | None, task_id: str, parameters: Any) -> Verdict:
    """Admit a call of `state` (reserving its estimate under `task_id`) or say it must wait.

    Raises BudgetExceededError when the execution's spend, or this state's against its own
    Task budget, has reached its limit."""
    tokens, cost = estimate(parameters, ledger)
    in_flight = list(ledger.reserved.values())
    scopes = [("the execution", ledger.limits, ledger.spent, in_flight)]
    if task_limits is not None:
        scopes.append((f"the state {state!r}", task_limits, ledger.by_state.get(state, Spend()),
                       [r for r in in_flight if r.state == state]))
    verdict: Verdict = "go"
    for what, limits, spent, reserved in scopes:
        if limits is None:
            continue
        try:
            _check_left(what, limits, spent)
        except BudgetExceededError:
            ledger.refused += 1
            raise
        if reserved and not _fits(limits, spent, reserved, tokens, cost):
            verdict = "wait"
    if verdict == "go":
        ledger.reserved[task_id] = Reservation(state=state, tokens=tokens, cost_usd=cost)
    return verdict


class BudgetExceededError(Exception):
    """The spend has reached a limit: the call is not made (the state fails with BUDGET_EXCEEDED)."""


def _check_left(what: str, limits: Budget, spent: Spend) -> None:
    if limits.max_tokens is not None and spent.tokens >= limits.max_tokens:
        raise BudgetExceededError(f"{what} has spent {spent.tokens} tokens of its budget of {limits.max_tokens}; "
                                  "the LLM call is not made")
    if limits.max_cost is not None and spent.cost_usd >= limits.max_cost:
        raise BudgetExceededError(f"{what} has spent {spent.cost_usd:.6g} USD of its budget of "
                                  f"{limits.max_cost:g} USD; the LLM call is not made")


def _fits(limits: Budget, spent: Spend, reserved: list[Reservation], tokens: int, cost: float | None) -> bool:
    """Whether the call fits beside the calls in flight (there is at least one)."""
    if limits.max_tokens is not None and spent.tokens + sum(r.tokens for r in reserved) + tokens > limits.max_tokens:
        return False
    if limits.max_cost is not None:
        if cost is None or any(r.cost_usd is None for r in reserved):
            return False  # no price known yet: one call at a time, until one has settled
        return spent.cost_usd + sum(r.cost_usd or 0.0 for r in reserved) + cost <= limits.max_cost
    return True


def settle(ledger: Ledger, task_id: str, metadata: dict[str, Any] | None, state: str) -> dict[str, Any] | None:
    """A call ended: release its reservation and charge what it reported (`input_tokens`,
    `output_tokens`, `cost_usd` in the step's metadata). Returns the charge as the history
    records it, or None when nothing was reported."""
    if ledger.reserved.pop(task_id, None) is not None:
        ledger.released = True
    tokens, cost = _usage(metadata or {})
    if tokens is None and cost is None:
        return None
    spent_tokens, spent_cost = tokens or 0, cost or 0.0
    ledger.spent.add(spent_tokens, spent_cost)
    ledger.by_state.setdefault(state, Spend()).add(spent_tokens, spent_cost)
    ledger.largest_call = max(ledger.largest_call, spent_tokens)
    if spent_tokens > 0:
        rate = spent_cost / spent_tokens
        ledger.cost_per_token = rate if ledger.cost_per_token is None else max(ledger.cost_per_token, rate)
    return {"tokens": spent_tokens, "costUsd": spent_cost}


def release(ledger: Ledger, task_id: str) -> None:
    """A call whose result is no longer awaited (cancelled, timed out): its reservation ends,
    uncharged (what it may still spend is not known to the execution)."""
    if ledger.reserved.pop(task_id, None) is not None:
        ledger.released = True


def reports_usage(metadata: dict[str, Any] | None) -> bool:
    """Whether a step's metadata reports tokens or cost (what `settle` charges)."""
    return metadata is not None and _usage(metadata) != (None, None)


def _usage(metadata: dict[str, Any]) -> tuple[int | None, float | None]:
    counts = [metadata.get(key) for key in ("input_tokens", "output_tokens")]
    numbers = [int(c) for c in counts if isinstance(c, int | float) and not isinstance(c, bool) and c >= 0]
    cost = metadata.get("cost_usd")
    valid_cost = float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) and cost >= 0 else None
    return (sum(numbers) if numbers else None), valid_cost


def wait(ledger: Ledger, run_id: str, parameters: Any) -> None:
    tokens, cost = estimate(parameters, ledger)
    ledger.waiting.append(Waiter(run_id=run_id, tokens=tokens, cost_usd=cost))
    ledger.waited += 1


def wake(ledger: Ledger) -> list[str]:
    """The waiting runs to try again now that a reservation ended: in order, as many as fit in
    what is left of the execution's budget beside the calls in flight (at least the first when
    nothing is in flight). Each runs its Task again and waits again if it still does not fit."""
    if not ledger.released or not ledger.waiting:
        return []
    ledger.released = False
    reserved = list(ledger.reserved.values())
    woken = 0
    rate = ledger.cost_per_token
    for waiter in ledger.waiting:
        # Estimated again with what is known now (a price may have been learnt since it waited).
        tokens = max(waiter.tokens, ledger.largest_call)
        cost = tokens * rate if rate is not None else None
        candidate = Reservation(state="", tokens=tokens, cost_usd=cost)
        if reserved and ledger.limits is not None and not _fits(ledger.limits, ledger.spent, reserved, tokens, cost):
            break
        reserved.append(candidate)
        woken += 1
    ids = [w.run_id for w in ledger.waiting[:woken]]
    del ledger.waiting[:woken]
    return ids


def task_budget(parameters: Any) -> tuple[Any, Budget | None]:
    """The Parameters without `Budget`, and the Task budget they declared (BudgetError if bad)."""
    if not isinstance(parameters, dict) or TASK_PARAMETER not in parameters:
        return parameters, None
    limits = parse_budget(parameters[TASK_PARAMETER])
    return {k: v for k, v in parameters.items() if k != TASK_PARAMETER}, limits


def spend_in_history(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The budget and spend of an execution as its history (GetExecutionHistory's shape) says:
    the limits of its (last) ExecutionStarted, the sum of its task events' charges. None when it
    has neither. What describe and the execution page show; equal to the ledger's spend."""
    limits: dict[str, Any] | None = None
    spent = Spend()
    for event in events:
        kind = str(event.get("type"))
        details = event.get(kind[:1].lower() + kind[1:] + "EventDetails")
        if not isinstance(details, dict):
            continue
        if kind == "ExecutionStarted":
            limits = details.get("budget") if isinstance(details.get("budget"), dict) else None
            spent = Spend()  # a new run of the name starts from nothing (a redrive does not restart)
        charge = details.get("charge")
        if isinstance(charge, dict):
            spent.add(int(charge.get("tokens") or 0), float(charge.get("costUsd") or 0.0))
    if limits is None and not spent.calls:
        return None
    out: dict[str, Any] = {"spent": _spend_view(spent)}
    if limits is not None:
        out["limits"] = limits
    return out


def extension_problems(value: Any) -> list[Problem]:
    """`validate`'s check of the definition's `Baton` object: only `Budget`, and a valid one."""
    where = f"$.{DEFINITION_FIELD}"
    if not isinstance(value, dict):
        return [Problem(where, f"'{DEFINITION_FIELD}' (Baton's extensions) must be an object such as "
                               '{"Budget": {"MaxTokens": 20000, "MaxCost": 0.5}}')]
    problems = [Problem(f"{where}.{key}", f"unknown Baton extension {key!r}; the one known is 'Budget'")
                for key in value if key != "Budget"]
    if "Budget" in value:
        try:
            parse_budget(value["Budget"])
        except BudgetError as exc:
            problems += [Problem(f"{where}.Budget" + (f".{field}" if field else ""), what)
                         for field, what in exc.problems]
    return problems


def limits_at_start(definition: dict[str, Any], given: Any) -> tuple[Budget | None, str | None]:
    """An execution's budget: the definition's (`Baton.Budget`), tightened by the start's; or why
    it cannot start (the start's budget, or a definition parsed unvalidated, is bad)."""
    try:
        declared = definition_budget(definition)
    except BudgetError as exc:
        return None, f"Baton.Budget: {exc}"
    try:
        started = None if given is None else parse_budget(given)
    except BudgetError as exc:
        return None, f"the start's budget: {exc}"
    return tighter(declared, started), None


def definition_budget(definition: dict[str, Any]) -> Budget | None:
    """The budget a definition declares (`Baton.Budget`); validated beforehand by `validate`."""
    extension = definition.get(DEFINITION_FIELD)
    if not isinstance(extension, dict) or "Budget" not in extension:
        return None
    return parse_budget(extension["Budget"])


__all__ = [
    "BUDGET_EXCEEDED", "DEFINITION_FIELD", "INVALID_BUDGET", "TASK_PARAMETER", "Budget", "BudgetError",
    "BudgetExceededError", "Ledger", "Spend", "definition_budget", "extension_problems", "gate", "limits_at_start",
    "parse_budget", "release", "reports_usage", "settle", "spend_in_history", "task_budget", "tighter", "wait",
    "wake",
]

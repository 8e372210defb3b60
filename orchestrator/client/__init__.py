"""The one way into a running Baton from outside: `BatonClient` publishes starts, stops and
redrives on the start topic and waits for an execution's end; `callbacks` verifies task tokens
and follows a decision to its outcome; `reviews` is the reviewers' side (pending reviews, posting
a decision).

Every front end (`baton start | stop | redrive`, the API, the demo, the benches) parses, calls
the client and prints; none builds a request record itself.
"""

from __future__ import annotations

from orchestrator.client.callbacks import (
    DecisionRefused,
    OutcomeWatch,
    awaited_tasks,
    describe_outcome,
    verify_token,
)
from orchestrator.client.client import (
    NAME_MAX,
    NAME_SYMBOLS,
    TERMINAL_STATUSES,
    BatonClient,
    InvalidBudget,
    InvalidName,
    NoOrchestrator,
    StateMachineNotFound,
    WaitTimedOut,
    input_quotas,
    valid_name,
)
from orchestrator.client.reviews import PendingReview, ReviewInboxError, find_pending, pending_reviews, post_decision

__all__ = [
    "NAME_MAX", "NAME_SYMBOLS", "TERMINAL_STATUSES", "BatonClient", "DecisionRefused", "InvalidBudget", "InvalidName",
    "NoOrchestrator", "OutcomeWatch", "StateMachineNotFound", "WaitTimedOut", "awaited_tasks", "describe_outcome", "input_quotas",
    "valid_name",
    "verify_token",
    "PendingReview", "ReviewInboxError", "find_pending", "pending_reviews", "post_decision",
]

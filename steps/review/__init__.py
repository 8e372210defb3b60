"""Human review (`baton:review.waitForTaskToken`): the callback pattern with a person deciding.

- `task`: the Task's Parameters (`ReviewTask`: Question, Content, Context, Decisions,
  Instructions) and the `ReviewRequest` reviewers see (`ReviewDetails` in its context);
- `service`: the step service that publishes requests (`review_service`, `baton step review`);
- `decisions`: approve / edit / reject / heartbeat as `ReviewDecision`s, and the results they give;
- the reviewers' side on Kafka (pending reviews, posting a decision) is in `orchestrator.client.reviews`.
"""

from steps.review.decisions import REJECTED, approve, check_token, edit, heartbeat, reject
from steps.review.task import DECISIONS, InvalidReviewTask, ReviewDetails, ReviewTask, review_request

__all__ = [
    "DECISIONS", "REJECTED", "InvalidReviewTask", "ReviewDetails", "ReviewTask", "approve", "check_token", "edit",
    "heartbeat", "reject", "review_request",
]

"""Every error `baton eval` raises on purpose, one family under `EvalError` (a `BatonError`).

    EvalError             the eval cannot run at all (no dataset items, no variant left, ...)
    ├── DatasetError      the dataset cannot be read as a whole
    ├── VariantError      one variant is refused (unknown model, bad override): the others run
    ├── ScorerError       a scorer is misconfigured (unknown kind, bad regex, bad JSONPath)
    ├── JudgeError        the judge's answer holds no score: that item's judge score is left out
    └── RunNotFound       `compare`/`rerun` name a run that is not kept
"""

from __future__ import annotations

from schemas.errors import BatonError


class EvalError(BatonError):
    """The eval cannot run; the message says what was wrong and what to do. `problems`: the
    lines met before it gave up (the dataset lines skipped, the variants refused)."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [])


class DatasetError(EvalError):
    """The dataset cannot be used as a whole (one bad line is a problem reported, not this)."""


class VariantError(EvalError):
    """A variant is refused; the message names the variant and the fix."""


class ScorerError(EvalError):
    """A scorer's configuration is wrong; the message names the scorer."""


class JudgeError(EvalError):
    """The judge model's answer does not hold a score from 0 to 10."""


class RunNotFound(EvalError):
    """No kept eval run by that id under the state directory."""

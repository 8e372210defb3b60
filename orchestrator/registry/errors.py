"""The registry's exceptions: one documented hierarchy, each message one line a user can act on.

    RegistryError              (a schemas.errors.BatonError)
    ├── InvalidName            a state machine or alias name the registry refuses
    ├── InvalidReference       not NAME, NAME:VERSION, NAME:ALIAS or a stateMachine ARN
    ├── InvalidDefinition      the core's validator refused the definition (`.problems`)
    ├── InvalidRouting         an alias's versions and weights break the rules
    ├── NotFound
    │   ├── UnknownStateMachine
    │   ├── UnknownVersion
    │   └── UnknownAlias
    ├── VersionInUse           deleting a version an alias points to
    ├── RecordTooLarge         the state machine's record (draft + versions) is over the topic's limit
    └── RegistryUnavailable    Kafka could not be read or written in time

A definition over `Quotas.max_definition_bytes` is refused before any of these, with
`orchestrator.quotas.QuotaExceeded` (what every entry point raises for its quotas).
"""

from __future__ import annotations

from orchestrator.asl.errors import Problem
from schemas.errors import BatonError


class RegistryError(BatonError):
    """Anything the registry refuses or cannot do; `str()` is one line."""


class InvalidName(RegistryError):
    pass


class InvalidReference(RegistryError):
    pass


class InvalidDefinition(RegistryError):
    """The definition failed validation; nothing was stored. `problems` lists every fault."""

    def __init__(self, name: str, problems: list[Problem]) -> None:
        self.name = name
        self.problems = problems
        listed = "; ".join(str(p) for p in problems)
        super().__init__(f"invalid definition for {name!r} ({len(problems)} problem(s)): {listed}; nothing was stored")


class InvalidRouting(RegistryError):
    pass


class NotFound(RegistryError):
    pass


class UnknownStateMachine(NotFound):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no state machine named {name!r} is registered")


class UnknownVersion(NotFound):
    pass


class UnknownAlias(NotFound):
    pass


class VersionInUse(RegistryError):
    pass


class RecordTooLarge(RegistryError):
    """Kafka refused the state machine's record (its draft, every version and the aliases, one
    compacted record) as too large even compressed; nothing was stored."""

    def __init__(self, name: str, versions: int, size: int, topic: str) -> None:
        self.name, self.versions, self.size, self.topic = name, versions, size, topic
        super().__init__(
            f"the registry record of {name!r} (its draft and {versions} version(s), {size:,} bytes before "
            f"compression) is over the message size limit of {topic} (the topic's max.message.bytes, 1 MB "
            f"by default): delete versions no alias uses (`baton delete-version {name} VERSION`), or raise "
            f"max.message.bytes of {topic}; nothing was stored")


class RegistryUnavailable(RegistryError):
    pass

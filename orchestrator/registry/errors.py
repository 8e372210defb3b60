"""The registry's exceptions: one documented hierarchy, each message one line a user can act on.

    RegistryError
    ├── InvalidName            a state machine or alias name the registry refuses
    ├── InvalidReference       not NAME, NAME:VERSION, NAME:ALIAS or a stateMachine ARN
    ├── InvalidDefinition      the core's validator refused the definition (`.problems`)
    ├── InvalidRouting         an alias's versions and weights break the rules
    ├── NotFound
    │   ├── UnknownStateMachine
    │   ├── UnknownVersion
    │   └── UnknownAlias
    ├── VersionInUse           deleting a version an alias points to
    └── RegistryUnavailable    Kafka could not be read or written in time
"""

from __future__ import annotations

from orchestrator.asl.errors import Problem


class RegistryError(Exception):
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


class RegistryUnavailable(RegistryError):
    pass

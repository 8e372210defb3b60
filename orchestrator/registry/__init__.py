"""State machines as deployed things: a registry of definitions, immutable versions and aliases,
kept in Kafka itself (the compacted `statemachines` topic) and followed by every orchestrator.

`model` holds the rules (pure), `store` the Kafka read side (followers), `writer` the writes,
`errors` the exceptions.
"""

from orchestrator.registry.errors import (
    InvalidDefinition,
    InvalidName,
    InvalidReference,
    InvalidRouting,
    NotFound,
    RegistryError,
    RegistryUnavailable,
    UnknownAlias,
    UnknownStateMachine,
    UnknownVersion,
    VersionInUse,
)
from orchestrator.registry.model import Reference, Resolved, definition_hash, parse_reference, resolve, route

__all__ = [
    "InvalidDefinition", "InvalidName", "InvalidReference", "InvalidRouting", "NotFound", "Reference",
    "RegistryError", "RegistryUnavailable", "Resolved", "UnknownAlias", "UnknownStateMachine", "UnknownVersion",
    "VersionInUse", "definition_hash", "parse_reference", "resolve", "route",
]

"""The registry's rules, pure: references, weighted alias routing, deploy/publish/alias/delete.

No I/O and no clock: every operation takes the current record (or None) and `now`, and returns
the next record; `store.py` does the Kafka side. The same functions back the CLI, the
orchestrator (resolving a start) and the unit tests.

References name what to run, as Step Functions does:
    NAME            the draft (Step Functions' unqualified ARN: the latest revision)
    NAME:3          published version 3
    NAME:prod       whatever alias `prod` routes to
    arn:aws:states:REGION:ACCOUNT:stateMachine:NAME[:3|:prod]   (any partition; and Baton's own
    arn:baton:states:local:stateMachine:NAME[...] form)
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orchestrator.asl.errors import DefinitionError
from orchestrator.asl.model import parse_definition
from orchestrator.registry.errors import (
    InvalidDefinition,
    InvalidName,
    InvalidReference,
    InvalidRouting,
    UnknownAlias,
    UnknownStateMachine,
    UnknownVersion,
    VersionInUse,
)
from schemas.registry import AliasRoute, StateMachineAlias, StateMachineRecord, StateMachineVersion

# Step Functions' rule for state machine names: 1-80 characters, no whitespace, no control
# characters, none of these symbols (":" would also make NAME:QUALIFIER ambiguous).
_NAME_MAX = 80
_NAME_SYMBOLS = set('<>{}[]?*"#%\\^|~`$&,;:/')
# Step Functions' rule for alias names; at least one non-digit, so NAME:3 is always a version.
_ALIAS = re.compile(r"^(?=.*[A-Za-z_.\-])[A-Za-z0-9_.\-]{1,80}$")
_REFERENCE_FORMS = ("NAME, NAME:VERSION, NAME:ALIAS or arn:aws:states:REGION:ACCOUNT:stateMachine:NAME"
                    "[:VERSION|:ALIAS]")


def definition_hash(definition: Any) -> str:
    """sha256 of the definition's canonical JSON (sorted keys, no spaces): equal definitions hash
    equal whatever their key order or formatting."""
    canonical = json.dumps(definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_name(name: str) -> str:
    bad = "".join(sorted({c for c in name if c.isspace() or not c.isprintable() or c in _NAME_SYMBOLS}))
    if not name or len(name) > _NAME_MAX or bad:
        found = f" (found {bad!r})" if bad else ""
        raise InvalidName(f"state machine name {name!r} must be 1 to {_NAME_MAX} characters, without whitespace "
                          f"or any of {''.join(sorted(_NAME_SYMBOLS))}{found}")
    return name


def check_alias_name(alias: str) -> str:
    if not _ALIAS.match(alias):
        raise InvalidName(f"alias name {alias!r} must be 1 to 80 characters of letters, digits, '_', '-' or '.', "
                          "with at least one that is not a digit")
    return alias


# ------------------------------------------------------------ references


@dataclass(frozen=True)
class Reference:
    """What a start names: a state machine, and at most one of a version or an alias."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        qualifier = self.alias if self.alias is not None else self.version
        return self.name if qualifier is None else f"{self.name}:{qualifier}"


@dataclass(frozen=True)
class Resolved:
    """What an execution runs, pinned: the definition and the version (None: the draft) and alias
    it was reached through."""

    name: str
    version: int | None
    alias: str | None
    definition: dict[str, Any]
    definition_hash: str


def parse_reference(text: str) -> Reference:
    """NAME, NAME:VERSION, NAME:ALIAS, or a stateMachine ARN with the same optional qualifier."""
    parts = text.split(":")
    if parts[0] == "arn":
        # arn:PARTITION:states:REGION:ACCOUNT:stateMachine:NAME[:Q] (AWS), or Baton's
        # arn:baton:states:local:stateMachine:NAME[:Q], which has no account field.
        at = next((i for i in (5, 4) if len(parts) > i and parts[i] == "stateMachine"), None)
        if len(parts) < 3 or parts[2] != "states" or at is None:
            raise InvalidReference(f"{text!r} is not a state machine ARN: use {_REFERENCE_FORMS}")
        parts = parts[at + 1:]
    if not 1 <= len(parts) <= 2 or not parts[0]:
        raise InvalidReference(f"{text!r} is not a state machine reference: use {_REFERENCE_FORMS}")
    name = check_name(parts[0])
    if len(parts) == 1:
        return Reference(name)
    qualifier = parts[1]
    if qualifier.isdigit() and qualifier.isascii():
        version = int(qualifier)
        if version < 1:
            raise InvalidReference(f"{text!r}: versions are numbered from 1")
        return Reference(name, version=version)
    return Reference(name, alias=check_alias_name(qualifier))


def resolve(records: Mapping[str, StateMachineRecord], reference: str, execution_name: str) -> Resolved:
    """The definition a start naming `reference` runs; a two-version alias picks by weight,
    deterministically from `execution_name` (a retried start lands on the same version)."""
    ref = parse_reference(reference)
    record = records.get(ref.name)
    if record is None:
        raise UnknownStateMachine(ref.name)
    if ref.version is None and ref.alias is None:
        return Resolved(record.name, None, None, record.definition, record.definition_hash)
    if ref.alias is not None:
        alias = find_alias(record, ref.alias)
        number = route(record.name, alias, execution_name)
    else:
        assert ref.version is not None
        number = ref.version
    version = find_version(record, number)
    return Resolved(record.name, version.version, ref.alias, version.definition, version.definition_hash)


def route(name: str, alias: StateMachineAlias, execution_name: str) -> int:
    """The version an alias sends this execution to.

    The bucket (0-99) is a stable hash of the state machine, the alias and the execution name
    (sha256, never Python's per-process `hash`), so every orchestrator instance, and a retried
    or replayed start, picks the same version. Routes take consecutive bucket ranges in order.
    """
    if len(alias.routes) == 1:
        return alias.routes[0].version
    digest = hashlib.sha256("\0".join((name, alias.name, execution_name)).encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") % 100
    ceiling = 0
    for entry in alias.routes:
        ceiling += entry.weight
        if bucket < ceiling:
            return entry.version
    return alias.routes[-1].version  # unreachable while weights sum to 100


def find_version(record: StateMachineRecord, number: int) -> StateMachineVersion:
    for version in record.versions:
        if version.version == number:
            return version
    have = ", ".join(str(v.version) for v in record.versions)
    listed = f"versions: {have}" if have else "it has no published versions"
    raise UnknownVersion(f"state machine {record.name!r} has no version {number} ({listed})")


def find_alias(record: StateMachineRecord, name: str) -> StateMachineAlias:
    alias = record.aliases.get(name)
    if alias is None:
        have = ", ".join(sorted(record.aliases))
        listed = f"aliases: {have}" if have else "it has no aliases"
        raise UnknownAlias(f"state machine {record.name!r} has no alias {name!r} ({listed})")
    return alias


def require(records: Mapping[str, StateMachineRecord], name: str) -> StateMachineRecord:
    record = records.get(name)
    if record is None:
        raise UnknownStateMachine(name)
    return record


# ------------------------------------------------------------ operations: record -> next record


def _next(record: StateMachineRecord, now: datetime, **changes: Any) -> StateMachineRecord:
    """The record after one write: a new record id, the revision + 1, the update time."""
    return record.model_copy(update={"id": uuid.uuid4().hex, "timestamp": now, "revision": record.revision + 1,
                                     "updated": now, **changes})


def deploy(current: StateMachineRecord | None, name: str, definition: Any, *, now: datetime,
           description: str | None = None) -> StateMachineRecord:
    """Store `definition` as the draft of `name` (creating the state machine if needed), after the
    core has validated it: InvalidDefinition lists every problem, and nothing changes."""
    check_name(name)
    try:
        parse_definition(definition)
    except DefinitionError as exc:
        raise InvalidDefinition(name, exc.problems) from None
    digest = definition_hash(definition)
    if current is not None and current.definition_hash == digest and description in (None, current.description):
        return current  # nothing changes: nothing to write
    if current is None:
        return StateMachineRecord(name=name, definition=definition, definition_hash=digest,
                                  description=description, created=now, updated=now, timestamp=now)
    return _next(current, now, definition=definition, definition_hash=digest,
                 description=description if description is not None else current.description)


def publish(record: StateMachineRecord, *, now: datetime,
            description: str | None = None) -> tuple[StateMachineRecord, StateMachineVersion]:
    """Publish the draft as the next version (numbers are never reused).

    Publishing a draft identical to the newest version (and no new description) returns that
    version instead of a copy, as Step Functions does, so a retried `deploy --publish` is harmless.
    """
    newest = record.versions[-1] if record.versions else None
    if (newest is not None and newest.definition_hash == record.definition_hash
            and description in (None, newest.description)):
        return record, newest
    version = StateMachineVersion(version=record.last_version + 1, definition=record.definition,
                                  definition_hash=record.definition_hash, description=description, created=now)
    return _next(record, now, versions=[*record.versions, version], last_version=version.version), version


def alias_routes(versions: Sequence[int], weights: Sequence[int]) -> list[AliasRoute]:
    """Routes from the CLI's `--version V [--version V2 --weight W]`.

    One version: weight 100. Two versions and one weight: the weight is the second version's
    share and the first gets the rest. Two versions and two weights: they must sum to 100.
    """
    if not versions:
        raise InvalidRouting("give the version the alias points to (--version V)")
    if len(versions) > 2:
        raise InvalidRouting(f"an alias routes to one or two versions, not {len(versions)}")
    if len(weights) > len(versions):
        raise InvalidRouting(f"{len(weights)} weights for {len(versions)} version(s): give one weight per version "
                             "at most")
    for weight in weights:
        if not 0 <= weight <= 100:
            raise InvalidRouting(f"weight {weight} is not between 0 and 100")
    if len(versions) == 1:
        shares = [weights[0] if weights else 100]
    elif not weights:
        raise InvalidRouting(f"give the weight of version {versions[1]} (--weight W, the percentage of executions "
                             "it gets)")
    elif len(weights) == 1:
        shares = [100 - weights[0], weights[0]]
    else:
        shares = list(weights)
    if sum(shares) != 100:
        got = " + ".join(str(w) for w in shares)
        raise InvalidRouting(f"alias weights must sum to 100, got {got} = {sum(shares)}")
    return [AliasRoute(version=v, weight=w) for v, w in zip(versions, shares)]


def set_alias(record: StateMachineRecord, alias: str, routes: Sequence[AliasRoute], *, now: datetime,
              description: str | None = None) -> tuple[StateMachineRecord, StateMachineAlias]:
    """Create or move an alias: to one version (weight 100), or two with weights summing to 100."""
    check_alias_name(alias)
    if not 1 <= len(routes) <= 2:
        raise InvalidRouting(f"an alias routes to one or two versions, not {len(routes)}")
    numbers = [entry.version for entry in routes]
    if len(set(numbers)) != len(numbers):
        raise InvalidRouting(f"alias {alias!r} names version {numbers[0]} twice")
    for number in numbers:
        find_version(record, number)
    total = sum(entry.weight for entry in routes)
    if total != 100:
        got = " + ".join(str(entry.weight) for entry in routes)
        raise InvalidRouting(f"alias weights must sum to 100, got {got} = {total}")
    previous = record.aliases.get(alias)
    kept = description if description is not None else previous.description if previous else None
    entry = StateMachineAlias(name=alias, routes=list(routes), description=kept, updated=now)
    return _next(record, now, aliases={**record.aliases, alias: entry}), entry


def delete_alias(record: StateMachineRecord, alias: str, *, now: datetime) -> StateMachineRecord:
    find_alias(record, alias)
    return _next(record, now, aliases={k: v for k, v in record.aliases.items() if k != alias})


def delete_version(record: StateMachineRecord, number: int, *, now: datetime) -> StateMachineRecord:
    """Delete a published version that no alias points to (running executions keep their copy)."""
    find_version(record, number)
    users = sorted(name for name, alias in record.aliases.items() if any(r.version == number for r in alias.routes))
    if users:
        raise VersionInUse(f"version {number} of {record.name!r} is used by alias(es) {', '.join(users)}; "
                           "point them at another version first")
    return _next(record, now, versions=[v for v in record.versions if v.version != number])

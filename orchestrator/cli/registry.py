"""`baton deploy | versions | alias | state-machines | state-machine | delete-version`: the registry.

Writes go through `orchestrator.registry.writer.RegistryWriter` (validated by the core first; an
invalid definition is refused and nothing is stored); reads catch up with the registry topic.
Every failure is one line on stderr and a non-zero exit. Registered lazily in `orchestrator.cli`.
"""

from __future__ import annotations

import json
from collections.abc import Coroutine
from datetime import datetime
from typing import Any, TypeVar

import click

from kafka_io import KafkaSettings
from kafka_io.explain import explain_wrapped
from orchestrator.asl.timestamps import format_timestamp
from orchestrator.cli._shared import fail, kafka_settings, print_json, state_machine_name
from orchestrator.cli.control import json_option, kafka_options, run
from orchestrator.cli.printing import print_table
from orchestrator.registry.errors import RegistryError
from orchestrator.registry.model import alias_routes, check_name, find_version, require
from schemas.registry import StateMachineAlias, StateMachineRecord

T = TypeVar("T")
_HASH_WIDTH = 12  # as git shortens commit ids


def _run(work: Coroutine[Any, Any, T], settings: KafkaSettings) -> T:
    try:
        return run(work, settings)
    except RegistryError as exc:
        fail(explain_wrapped(exc, settings))  # "cannot read the registry" may be a refused login


def _time(moment: datetime) -> str:
    return format_timestamp(moment)


def _short(digest: str) -> str:
    return digest[:_HASH_WIDTH]


def _routes(alias: StateMachineAlias) -> str:
    if len(alias.routes) == 1:
        return f"version {alias.routes[0].version}"
    return ", ".join(f"version {r.version} ({r.weight}%)" for r in alias.routes)


def _aliases_of(record: StateMachineRecord, version: int) -> str:
    names = []
    for name, alias in sorted(record.aliases.items()):
        for route in alias.routes:
            if route.version == version:
                names.append(name if route.weight == 100 else f"{name} ({route.weight}%)")
    return ", ".join(names) or "-"


def _load(path: str) -> Any:
    from orchestrator.asl.model import load_document
    from orchestrator.cli._shared import read_text
    from orchestrator.cli.errors import document_problem

    text = read_text(path)
    try:
        return load_document(text)
    except RecursionError:
        fail(f"{path}: the definition nests too deeply")
    except ValueError as exc:
        fail(document_problem(path, text, exc))


async def _read(settings: KafkaSettings) -> dict[str, StateMachineRecord]:
    from orchestrator.registry.store import read_registry

    return await read_registry(settings)


async def _record(settings: KafkaSettings, name: str) -> StateMachineRecord:
    check_name(name)
    return require(await _read(settings), name)


# ------------------------------------------------------------ writing


@click.command()
@click.argument("file")
@click.option("--name", help="The state machine's name (default: the folder of a definition.json, else the file "
                               "name without its extension).")
@click.option("--publish", is_flag=True, help="Also publish the definition as the next version.")
@click.option("--description", help="A description of the state machine (and of the version published).")
@json_option
@kafka_options
def deploy(file: str, name: str | None, publish: bool, description: str | None, as_json: bool,
           bootstrap: str | None, topic_prefix: str | None) -> None:
    """Store a definition FILE (JSON or YAML) as a state machine's draft, after validating it;
    with --publish, also as its next immutable version."""
    from orchestrator.registry.writer import RegistryWriter

    definition = _load(file)
    name = name if name is not None else state_machine_name(file)
    settings = kafka_settings(bootstrap, topic_prefix)
    deployed = _run(RegistryWriter(settings).deploy(name, definition, description=description, publish=publish),
                    settings)
    record, version = deployed.record, deployed.version
    if as_json:
        print_json({"name": record.name, "revision": record.revision, "definition_hash": record.definition_hash,
                    "version": version.version if version else None, "changed": deployed.changed})
        return
    line = f"deployed {record.name} (draft {_short(record.definition_hash)}"
    line += ")" if deployed.changed else ", unchanged)"
    if version is not None:
        line += f"; version {version.version}"
    click.echo(line)


@click.group()
def alias() -> None:
    """Point an alias at one version, or split it between two by weight."""


@alias.command("set")
@click.argument("name")
@click.argument("alias_name", metavar="ALIAS")
@click.option("--version", "versions", type=int, multiple=True, required=True,
              help="A version the alias routes to (give two for a weighted split).")
@click.option("--weight", "weights", type=int, multiple=True,
              help="With two versions: the second's percentage, or one weight per version (summing to 100).")
@click.option("--description", help="A description of the alias.")
@json_option
@kafka_options
def alias_set(name: str, alias_name: str, versions: tuple[int, ...], weights: tuple[int, ...],
              description: str | None, as_json: bool, bootstrap: str | None, topic_prefix: str | None) -> None:
    """Create or move alias ALIAS of state machine NAME:
    `--version V`, or `--version V1 --version V2 --weight W` (V2 gets W%, V1 the rest)."""
    from orchestrator.registry.writer import RegistryWriter

    try:
        routes = alias_routes(versions, weights)
    except RegistryError as exc:
        fail(str(exc))
    settings = kafka_settings(bootstrap, topic_prefix)
    entry = _run(RegistryWriter(settings).set_alias(name, alias_name, routes, description=description), settings)
    if as_json:
        print_json({"name": name, **entry.model_dump(mode="json")})
    else:
        click.echo(f"alias {entry.name} of {name} -> {_routes(entry)}")


@alias.command("delete")
@click.argument("name")
@click.argument("alias_name", metavar="ALIAS")
@kafka_options
def alias_delete(name: str, alias_name: str, bootstrap: str | None, topic_prefix: str | None) -> None:
    """Delete alias ALIAS of state machine NAME (its versions stay)."""
    from orchestrator.registry.writer import RegistryWriter

    settings = kafka_settings(bootstrap, topic_prefix)
    _run(RegistryWriter(settings).delete_alias(name, alias_name), settings)
    click.echo(f"deleted alias {alias_name} of {name}")


@click.command("delete-version")
@click.argument("name")
@click.argument("version", type=click.IntRange(min=1))
@kafka_options
def delete_version(name: str, version: int, bootstrap: str | None, topic_prefix: str | None) -> None:
    """Delete published VERSION of state machine NAME; refused while an alias points to it.
    Running executions keep their own copy; the number is never reused."""
    from orchestrator.registry.writer import RegistryWriter

    settings = kafka_settings(bootstrap, topic_prefix)
    _run(RegistryWriter(settings).delete_version(name, version), settings)
    click.echo(f"deleted version {version} of {name}")


# ------------------------------------------------------------ reading


@click.command()
@click.argument("name")
@json_option
@kafka_options
def versions(name: str, as_json: bool, bootstrap: str | None, topic_prefix: str | None) -> None:
    """List the published versions of state machine NAME, oldest first."""
    settings = kafka_settings(bootstrap, topic_prefix)
    record = _run(_record(settings, name), settings)
    if as_json:
        print_json([{**v.model_dump(mode="json", exclude={"definition"}), "aliases": _aliases_of(record, v.version)}
                    for v in record.versions])
        return
    if not record.versions:
        click.echo(f"{name} has no published versions (baton deploy FILE --name {name} --publish)")
        return
    print_table(["VERSION", "CREATED", "HASH", "ALIASES", "DESCRIPTION"],
                [[str(v.version), _time(v.created), _short(v.definition_hash), _aliases_of(record, v.version),
                  v.description or ""] for v in record.versions])


@click.command("state-machines")
@json_option
@kafka_options
def state_machines(as_json: bool, bootstrap: str | None, topic_prefix: str | None) -> None:
    """List the registered state machines."""
    settings = kafka_settings(bootstrap, topic_prefix)
    records = sorted(_run(_read(settings), settings).values(), key=lambda r: r.name)
    if as_json:
        print_json([{"name": r.name, "revision": r.revision, "updated": _time(r.updated),
                     "versions": [v.version for v in r.versions], "aliases": sorted(r.aliases),
                     "description": r.description} for r in records])
        return
    print_table(["NAME", "VERSIONS", "ALIASES", "UPDATED", "DESCRIPTION"],
                [[r.name, ", ".join(str(v.version) for v in r.versions) or "-",
                  ", ".join(sorted(r.aliases)) or "-", _time(r.updated), r.description or ""] for r in records])


@click.command("state-machine")
@click.argument("name")
@click.option("--version", "version", type=click.IntRange(min=1),
              help="Show this version's definition, not the draft's.")
@json_option
@kafka_options
def state_machine(name: str, version: int | None, as_json: bool, bootstrap: str | None,
                  topic_prefix: str | None) -> None:
    """Describe state machine NAME: its versions, its aliases and its draft definition."""
    settings = kafka_settings(bootstrap, topic_prefix)
    record = _run(_record(settings, name), settings)
    if version is not None:
        try:
            shown = find_version(record, version)
        except RegistryError as exc:
            fail(str(exc))
        if as_json:
            print_json(shown.model_dump(mode="json"))
        else:
            click.echo(json.dumps(shown.definition, indent=2, ensure_ascii=False))
        return
    if as_json:
        print_json(record.model_dump(mode="json"))
        return
    same = next((v.version for v in reversed(record.versions) if v.definition_hash == record.definition_hash), None)
    draft = _short(record.definition_hash) + (f" (= version {same})" if same is not None else " (unpublished)")
    fields = [("Name", record.name), ("Description", record.description or "-"), ("Created", _time(record.created)),
              ("Updated", _time(record.updated)), ("Revision", str(record.revision)), ("Draft", draft)]
    width = max(len(label) for label, _ in fields)
    for label, value in fields:
        click.echo(f"{label.ljust(width)}  {value}")
    click.echo("\nVersions:")
    if record.versions:
        print_table(["  VERSION", "CREATED", "HASH", "DESCRIPTION"],
                    [[f"  {v.version}", _time(v.created), _short(v.definition_hash), v.description or ""]
                     for v in record.versions])
    else:
        click.echo("  none")
    click.echo("\nAliases:")
    if record.aliases:
        print_table(["  ALIAS", "ROUTES", "UPDATED"],
                    [[f"  {a.name}", _routes(a), _time(a.updated)] for _, a in sorted(record.aliases.items())])
    else:
        click.echo("  none")
    click.echo("\nDefinition (draft):")
    click.echo(json.dumps(record.definition, indent=2, ensure_ascii=False))


COMMANDS: tuple[click.Command, ...] = (deploy, versions, alias, state_machines, state_machine, delete_version)

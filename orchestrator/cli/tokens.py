"""`baton tokens create --role R --name N [--queue Q ...] | revoke NAME | list`: the API's bearer tokens.

Tokens are stored hashed (PBKDF2) in the token file (`orchestrator.api.auth`); `create` prints the
token once. A running `baton api` sees a new or revoked token on its next request. `--queue`
limits the reviews a reviewer (or admin) token may see and decide to those state machines.
"""

from __future__ import annotations

import click

from orchestrator.api.auth import ROLES, TokenStore, TokenStoreError
from orchestrator.cli._shared import fail, print_json

_file = click.option("--file", "tokens_file", envvar="BATON_API_TOKENS_FILE",
                     help="The token file (env BATON_API_TOKENS_FILE; default .baton/api-tokens.json).")


@click.group()
def tokens() -> None:
    """Create, list and revoke the API's bearer tokens (roles: viewer, operator, reviewer, admin)."""


@tokens.command()
@click.option("--role", type=click.Choice(ROLES), required=True,
              help="admin: everything; operator: start/stop/redrive/deploy + read; reviewer: reviews + read; "
                   "viewer: read.")
@click.option("--name", required=True, help="Who or what uses it; review decisions record this name.")
@click.option("--queue", "queues", multiple=True, metavar="NAME",
              help="Review only the executions of this state machine (its registered name: every version and "
                   "alias of it). Repeat for several; without it, every queue. Reviewer and admin tokens only.")
@_file
def create(role: str, name: str, queues: tuple[str, ...], tokens_file: str | None) -> None:
    """Create a token and print it (only now: it is stored hashed)."""
    try:
        click.echo(TokenStore(tokens_file).create(name, role, queues))
    except TokenStoreError as exc:
        fail(str(exc))


@tokens.command()
@click.argument("name")
@_file
def revoke(name: str, tokens_file: str | None) -> None:
    """Revoke the token NAME; the API refuses it from its next request on."""
    try:
        TokenStore(tokens_file).revoke(name)
    except TokenStoreError as exc:
        fail(str(exc))
    click.echo(f"revoked {name}")


@tokens.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@_file
def list_tokens(as_json: bool, tokens_file: str | None) -> None:
    """Every token's name, role, creation time and review queues (never the token)."""
    entries = TokenStore(tokens_file).list()
    if as_json:
        print_json(entries)
        return
    for entry in entries:
        queues = "(unusable: revoke it)" if entry.get("unusable") else \
            "all queues" if entry["queues"] is None else "queues: " + (",".join(entry["queues"]) or "(none)")
        click.echo(f"{entry['name']}\t{entry['role']}\t{entry['created']}\t{queues}")

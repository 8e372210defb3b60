"""Who may call a route: every route declares the role it needs through `requires(role)`.

`requires` asks the app's `Authorizer` (set by `create_app`): `allow_all` without auth (tests,
`baton api --insecure-local`), or `orchestrator.api.auth.TokenAuthorizer` (Baton's tokens and an
identity provider's JWTs), which raises `AuthError` (401 / 403).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

from fastapi import Depends, Request

Role = Literal["viewer", "operator", "reviewer", "admin"]
Authorizer = Callable[[Request, Role], Awaitable[None]]


async def allow_all(request: Request, role: Role) -> None:
    """The Authorizer without auth (tests, `baton api --insecure-local`): every request may act."""


def requires(role: Role) -> Any:
    """A dependency that asks the app's Authorizer whether the request may act as `role`."""

    async def check(request: Request) -> None:
        authorizer: Authorizer = request.app.state.authorizer
        await authorizer(request, role)

    return Depends(check)


async def may(request: Request, role: Role) -> bool:
    """Whether the request may act as `role` (a page shows an action only to whom may use it)."""
    from orchestrator.api.auth import AuthError

    authorizer: Authorizer = request.app.state.authorizer
    try:
        await authorizer(request, role)
    except AuthError:
        return False
    return True

"""FastAPI dependencies for the caller: their verified principal and their permissions.

The composition root installs the service's verifier once
(``TOKEN_VERIFIER.install(app, verifier)``); a route then takes
``caller: Authenticated`` or ``Depends(require_permission("catalog:write"))``.
Every service enforces RBAC here, not only the gateway: a request that reaches
a service directly is checked the same way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from emporium_kit.identity.tokens import InvalidToken, Principal, TokenVerifier, bearer_token
from emporium_kit.problems import ProblemError
from emporium_kit.wiring import AppSlot

TOKEN_VERIFIER: AppSlot[TokenVerifier] = AppSlot("token_verifier")
"""The app's access-token verifier, installed by its composition root."""

_BEARER = {"WWW-Authenticate": "Bearer"}

# Declares the scheme in the OpenAPI document; the header itself is parsed
# strictly (a malformed Authorization header is a 401, never ignored).
_bearer_scheme = HTTPBearer(auto_error=False, bearerFormat="JWT")


async def authenticated(
    request: Request,
    verifier: Annotated[TokenVerifier, Depends(TOKEN_VERIFIER)],
    _declared: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)],
) -> Principal:
    """The caller's principal; 401 (``WWW-Authenticate: Bearer``) without a valid token."""
    try:
        token = bearer_token(request.headers.get("authorization"))
        if token is None:
            raise ProblemError(
                401, "unauthenticated", "A bearer token is required.", headers=_BEARER
            )
        return await verifier.verify(token)
    except InvalidToken as exc:
        raise ProblemError(401, exc.code, str(exc), headers=_BEARER) from exc


Authenticated = Annotated[Principal, Depends(authenticated)]


def require_permission(permission: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller's principal if it holds ``permission``, else 403."""

    async def check(caller: Authenticated) -> Principal:
        if not caller.has(permission):
            raise ProblemError(403, "forbidden", f"This action needs the {permission} permission.")
        return caller

    return check

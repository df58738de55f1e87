"""Request-scoped dependencies: the use-case ports, the caller, their client info."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from emporium_kit.auth import InvalidToken, Principal, TokenVerifier, bearer_token
from emporium_kit.client_ip import UNKNOWN_CLIENT, ClientIpResolver
from emporium_kit.problems import ProblemError
from users.domain.model import ClientInfo, User
from users.use_cases.authenticate import authenticate
from users.use_cases.deps import IdentityDeps

_BEARER = {"WWW-Authenticate": "Bearer"}


async def identity(request: Request) -> IdentityDeps:
    # async: FastAPI runs plain-def dependencies in a worker thread (a costly hop).
    deps: IdentityDeps = request.app.state.identity
    return deps


Identity = Annotated[IdentityDeps, Depends(identity)]


# Declares the scheme in the OpenAPI document; the header itself is parsed
# strictly by the kit (a malformed header is a 401, never ignored).
_bearer_scheme = HTTPBearer(auto_error=False, bearerFormat="JWT")


async def principal(
    request: Request,
    _declared: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)],
) -> Principal:
    verifier: TokenVerifier = request.app.state.verifier
    try:
        token = bearer_token(request.headers.get("authorization"))
        if token is None:
            raise ProblemError(
                401, "unauthenticated", "A bearer token is required.", headers=_BEARER
            )
        return await verifier.verify(token)
    except InvalidToken as exc:
        raise ProblemError(401, exc.code, str(exc), headers=_BEARER) from exc


async def current_user(
    deps: Identity, caller: Annotated[Principal, Depends(principal)]
) -> tuple[User, Principal]:
    return await authenticate(deps, caller), caller


Caller = Annotated[tuple[User, Principal], Depends(current_user)]


def require_permission(permission: str) -> Callable[..., Awaitable[tuple[User, Principal]]]:
    async def check(caller: Caller) -> tuple[User, Principal]:
        _, who = caller
        if not who.has(permission):
            raise ProblemError(403, "forbidden", f"This action needs the {permission} permission.")
        return caller

    return check


def client_info(request: Request) -> ClientInfo:
    """Where the request came from; the gateway's X-Forwarded-For is believed only
    when the peer is a trusted proxy (USERS_TRUSTED_PROXIES)."""
    resolver: ClientIpResolver = request.app.state.client_ips
    peer = request.client.host if request.client else None
    ip = resolver.resolve(peer, request.headers.getlist("x-forwarded-for"))
    agent = request.headers.get("user-agent")
    return ClientInfo(
        user_agent=agent[:512] if agent else None, ip=None if ip == UNKNOWN_CLIENT else ip
    )

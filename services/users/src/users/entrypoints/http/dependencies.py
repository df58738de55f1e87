"""Request-scoped dependencies: the app's components, the use cases' ports, the caller,
their client info."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from emporium_kit.client_ip import UNKNOWN_CLIENT
from emporium_kit.identity import Authenticated, Principal
from emporium_kit.identity import require_permission as kit_require_permission
from users.domain.model import ClientInfo, User
from users.entrypoints.http.components import USERS, UsersComponents
from users.use_cases.authenticate import authenticate
from users.use_cases.ports_and_policy import PortsAndPolicy

Components = Annotated[UsersComponents, Depends(USERS)]


# async: FastAPI runs plain-def dependencies in a worker thread (a costly hop).
async def use_case_ports(components: Components) -> PortsAndPolicy:
    return components.ports


Ports = Annotated[PortsAndPolicy, Depends(use_case_ports)]


async def current_user(ports: Ports, caller: Authenticated) -> tuple[User, Principal]:
    return await authenticate(ports, caller), caller


Caller = Annotated[tuple[User, Principal], Depends(current_user)]


def require_permission(permission: str) -> Callable[..., Awaitable[tuple[User, Principal]]]:
    """The kit's RBAC check (403 without ``permission``), then the account behind it."""
    permitted = Depends(kit_require_permission(permission))

    # A default, not Annotated: annotations are strings here, resolved against
    # the module's globals, where this closure's ``permitted`` does not exist.
    async def check(ports: Ports, caller: Principal = permitted) -> tuple[User, Principal]:
        return await authenticate(ports, caller), caller

    return check


async def client_info(request: Request, components: Components) -> ClientInfo:
    """Where the request came from; the gateway's X-Forwarded-For is believed only
    when the peer is a trusted proxy (USERS_TRUSTED_PROXIES)."""
    peer = request.client.host if request.client else None
    ip = components.client_ips.resolve(peer, request.headers.getlist("x-forwarded-for"))
    agent = request.headers.get("user-agent")
    return ClientInfo(
        user_agent=agent[:512] if agent else None, ip=None if ip == UNKNOWN_CLIENT else ip
    )


Client = Annotated[ClientInfo, Depends(client_info)]

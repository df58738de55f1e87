"""The identity routes of the public contract."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Response, status

from emporium_kit.pagination import InvalidCursor
from emporium_kit.problems import ProblemError
from users.domain.roles import USERS_ADMIN
from users.entrypoints.http.dependencies import (
    Caller,
    Client,
    Components,
    Ports,
    require_permission,
)
from users.entrypoints.http.schemas import (
    LoginRequest,
    PasswordResetConfirm,
    PasswordResetRequest,
    ProfileUpdate,
    RefreshRequest,
    RegisterRequest,
    RolesUpdate,
    SessionOut,
    TokenPairOut,
    UserOut,
    UserPage,
)
from users.use_cases.change_roles import change_roles
from users.use_cases.confirm_password_reset import confirm_password_reset
from users.use_cases.delete_session import delete_session as delete_session_use_case
from users.use_cases.list_sessions import list_sessions
from users.use_cases.list_users import list_users as list_users_use_case
from users.use_cases.log_in import log_in
from users.use_cases.log_out import log_out
from users.use_cases.refresh_session import refresh_session
from users.use_cases.register_user import register_user
from users.use_cases.request_password_reset import request_password_reset
from users.use_cases.update_profile import update_profile

# The route functions are named for the OpenAPI operation ids FastAPI derives from them;
# two use cases of the same name are imported as ..._use_case.
auth = APIRouter(prefix="/api/v1/auth", tags=["auth"])
accounts = APIRouter(prefix="/api/v1/users", tags=["users"])
wellknown = APIRouter(tags=["keys"])

AdminCaller = Annotated[Any, Depends(require_permission(USERS_ADMIN))]
_401: dict[int | str, dict[str, Any]] = {401: {"description": "Missing, invalid or revoked token"}}


@auth.post("/register", status_code=status.HTTP_201_CREATED, summary="Create an account")
async def register(body: RegisterRequest, ports: Ports) -> UserOut:
    user = await register_user(
        ports, email=str(body.email), password=body.password, full_name=body.full_name
    )
    return UserOut.of(user)


@auth.post("/login", summary="Start a session", responses=_401)
async def login(body: LoginRequest, ports: Ports, client: Client) -> TokenPairOut:
    pair = await log_in(ports, email=body.email, password=body.password, client=client)
    return TokenPairOut(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
    )


@auth.post("/refresh", summary="Exchange a refresh token (once) for a new pair", responses=_401)
async def refresh(body: RefreshRequest, ports: Ports) -> TokenPairOut:
    pair = await refresh_session(ports, refresh_token=body.refresh_token)
    return TokenPairOut(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
    )


@auth.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="End the session",
    responses={401: {"description": "Not shaped like a refresh token"}},
)
async def logout(body: RefreshRequest, ports: Ports) -> Response:
    await log_out(ports, refresh_token=body.refresh_token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@auth.post(
    "/password-reset/request",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Email a password-reset link if the account exists",
)
async def password_reset_request(body: PasswordResetRequest, ports: Ports) -> dict[str, str]:
    await request_password_reset(ports, email=body.email)
    return {"status": "accepted"}


@auth.post(
    "/password-reset/confirm",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Set a new password with a reset token",
    responses={400: {"description": "Bad, used or expired token"}},
)
async def password_reset_confirm(body: PasswordResetConfirm, ports: Ports) -> Response:
    await confirm_password_reset(ports, token=body.token, new_password=body.new_password)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@auth.get("/sessions", summary="The caller's active sessions", responses=_401)
async def sessions(ports: Ports, caller: Caller) -> list[SessionOut]:
    user, principal = caller
    active = await list_sessions(ports, user_id=user.id)
    return [SessionOut.of(s, principal.session_id) for s in active]


@auth.delete(
    "/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="End one of the caller's sessions",
    responses={**_401, 404: {"description": "Not one of the caller's sessions"}},
)
async def delete_session(session_id: UUID, ports: Ports, caller: Caller) -> Response:
    user, _ = caller
    await delete_session_use_case(ports, user_id=user.id, session_id=session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@accounts.get("/me", summary="The caller's account", responses=_401)
async def me(caller: Caller) -> UserOut:
    user, _ = caller
    return UserOut.of(user)


@accounts.patch("/me", summary="Update the caller's profile", responses=_401)
async def update_me(body: ProfileUpdate, ports: Ports, caller: Caller) -> UserOut:
    user, _ = caller
    changes: dict[str, str | None] = {}
    fields = body.model_fields_set
    if "full_name" in fields:
        changes["full_name"] = body.full_name
    if "phone" in fields:
        changes["phone"] = body.phone
    return UserOut.of(await update_profile(ports, user.id, changes))


@accounts.get(
    "",
    summary="List users (admin), newest first",
    responses={
        **_401,
        403: {"description": "Needs users:admin"},
        400: {"description": "Bad cursor"},
    },
)
async def list_users(
    components: Components,
    _admin: AdminCaller,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
    email: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=254,
            description="Only the user with this email (exact match, case-insensitive).",
        ),
    ] = None,
) -> UserPage:
    codec = components.user_cursors
    after: tuple[datetime, UUID] | None = None
    if cursor is not None:
        try:
            position = codec.decode(cursor)
            after = (datetime.fromisoformat(position["c"]), UUID(position["i"]))
        except (InvalidCursor, KeyError, TypeError, ValueError) as exc:
            raise ProblemError(400, "invalid-cursor", "The cursor is invalid.") from exc
    users = await list_users_use_case(components.ports, limit=limit + 1, after=after, email=email)
    page, more = users[:limit], len(users) > limit
    next_cursor = (
        codec.encode({"c": page[-1].created_at.isoformat(), "i": str(page[-1].id)})
        if more
        else None
    )
    return UserPage(items=[UserOut.of(u) for u in page], next_cursor=next_cursor)


@accounts.put(
    "/{user_id}/roles",
    summary="Replace a user's roles (admin)",
    responses={**_401, 403: {"description": "Needs users:admin"}, 404: {"description": "No user"}},
)
async def put_roles(user_id: UUID, body: RolesUpdate, ports: Ports, _admin: AdminCaller) -> UserOut:
    return UserOut.of(await change_roles(ports, user_id, body.roles))


@wellknown.get("/.well-known/jwks.json", summary="Public keys that verify access tokens")
async def jwks(components: Components) -> Response:
    return Response(
        components.jwks_json,
        media_type="application/json",
        headers={"Cache-Control": "public, max-age=300"},
    )

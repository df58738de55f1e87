"""Request and response bodies of the public contract.

Every request model forbids unknown fields (422) and every string is bounded
and free of control characters, so hostile input stops here.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    PlainSerializer,
    StringConstraints,
    field_validator,
)

from emporium_kit.fields import Line
from users.domain.model import Session, User
from users.domain.passwords import MAX_LENGTH, password_problem


def _check_password(value: str) -> str:
    problem = password_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


Timestamp = Annotated[datetime, PlainSerializer(_rfc3339, return_type=str)]
Password = Annotated[str, Field(max_length=MAX_LENGTH), AfterValidator(_check_password)]
AnyPassword = Annotated[str, Field(min_length=1, max_length=MAX_LENGTH)]
Email = Annotated[EmailStr, Field(max_length=254)]
LoginEmail = Annotated[Line, StringConstraints(min_length=1, max_length=254)]
FullName = Annotated[Line, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
OpaqueToken = Annotated[Line, StringConstraints(min_length=1, max_length=128)]
_PHONE = re.compile(r"\+?[0-9][0-9 ()\-]{4,30}")


def _check_phone(value: str) -> str:
    if not _PHONE.fullmatch(value):
        raise ValueError("must be a phone number: digits, spaces, ( ) - and an optional +")
    return value


Phone = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=32), AfterValidator(_check_phone)
]
RoleName = Annotated[str, StringConstraints(min_length=1, max_length=50, pattern=r"^[a-z_]+$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=4096)


class RegisterRequest(Strict):
    email: Email
    password: Password
    full_name: FullName


class LoginRequest(Strict):
    email: LoginEmail
    password: AnyPassword


class RefreshRequest(Strict):
    refresh_token: OpaqueToken


class PasswordResetRequest(Strict):
    email: LoginEmail


class PasswordResetConfirm(Strict):
    token: OpaqueToken
    new_password: Password


class ProfileUpdate(Strict):
    """Only the fields sent change; ``phone: null`` clears the phone."""

    full_name: FullName | None = None
    phone: Phone | None = None

    @field_validator("full_name")
    @classmethod
    def _full_name_cannot_be_cleared(cls, value: str | None) -> str | None:
        if value is None:
            raise ValueError("full_name cannot be null")
        return value


class RolesUpdate(Strict):
    roles: list[RoleName] = Field(min_length=1, max_length=10)


class UserOut(BaseModel):
    id: UUID
    email: str
    full_name: str
    phone: str | None
    roles: list[str]
    created_at: Timestamp

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=user.id,
            email=user.email,
            full_name=user.full_name,
            phone=user.phone,
            roles=list(user.roles),
            created_at=user.created_at,
        )


class UserPage(BaseModel):
    items: list[UserOut]
    next_cursor: str | None


class TokenPairOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - a scheme name
    expires_in: int


class SessionOut(BaseModel):
    id: UUID
    created_at: Timestamp
    last_used_at: Timestamp
    user_agent: str | None
    ip: str | None
    current: bool

    @classmethod
    def of(cls, session: Session, current_session: UUID) -> SessionOut:
        return cls(
            id=session.id,
            created_at=session.created_at,
            last_used_at=session.last_used_at,
            user_agent=session.user_agent,
            ip=session.ip,
            current=session.id == current_session,
        )


class Jwks(BaseModel):
    keys: list[dict[str, str]]

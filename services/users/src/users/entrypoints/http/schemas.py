"""Request and response bodies of the public contract.

Every request model forbids unknown fields (422) and every string is bounded
and free of control characters, so hostile input stops here. The published
JSON Schema of each field states the rules its validation applies (lengths
counted in code points, patterns in the syntax JSON Schema shares with
Python), so a client, or a fuzzer, that follows the document is not refused.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import email_validator
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
from users.domain.passwords import ASCII_PATTERN, MAX_LENGTH, MIN_LENGTH, password_problem
from users.domain.roles import ADMIN, CUSTOMER, STAFF
from users.domain.secrets import TOKEN_LENGTH, TOKEN_PATTERN


def _check_password(value: str) -> str:
    problem = password_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _check_not_blank(value: str) -> str:
    # The lengths are checked before the strip on a validated type such as Line, so
    # min_length alone lets "  " through as "".
    if not value:
        raise ValueError("must not be blank")
    return value


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _any_case(word: str) -> str:
    return "".join(f"[{ch.lower()}{ch.upper()}]" if ch.isalpha() else re.escape(ch) for ch in word)


# What email-validator (behind EmailStr) accepts, for ASCII addresses: a dot-atom local part
# and a domain of at least two LDH labels (none with "--" in 3rd-4th place, which only
# Punycode may use), ending in a letter and outside the special-use names it refuses.
_ATEXT = "A-Za-z0-9!#$%&'*+/=?^_`{|}~-"
_LABEL = r"(?![A-Za-z0-9-]{2}--)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_TOP_LABEL = r"(?![A-Za-z0-9-]{2}--)(?:[A-Za-z0-9][A-Za-z0-9-]{0,61})?[A-Za-z]"
_SPECIAL_USE = "|".join(_any_case(name) for name in email_validator.SPECIAL_USE_DOMAIN_NAMES)
EMAIL_PATTERN = (
    rf"^[{_ATEXT}]+(?:\.[{_ATEXT}]+)*"
    rf"@(?![A-Za-z0-9.-]*\.(?:{_SPECIAL_USE})$)(?:{_LABEL}\.)+{_TOP_LABEL}$"
)
# A line with something in it once FullName's strip has removed surrounding whitespace:
# the whitespace that pydantic strips and LINE_PATTERN lets through, spelled out because
# ``\s`` means different characters in different regex engines.
_STRIPPED = r"\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NON_BLANK_LINE_PATTERN = rf"^[^\x00-\x1f\x7f]*[^\x00-\x1f\x7f{_STRIPPED}][^\x00-\x1f\x7f]*$"
# _PHONE, less values that stripping would change: no space first or last.
PHONE_PATTERN = r"^\+?[0-9][0-9 ()\-]{3,29}[0-9()\-]$"

Timestamp = Annotated[datetime, PlainSerializer(_rfc3339, return_type=str)]
Password = Annotated[
    str,
    Field(
        max_length=MAX_LENGTH,
        description=(
            f"{MIN_LENGTH}-{MAX_LENGTH} characters, at least one letter and one digit, no NUL. "
            "Letters and digits of any script count; the pattern names the ASCII ones, so "
            "a password that matches it is always accepted."
        ),
        json_schema_extra={"minLength": MIN_LENGTH, "pattern": ASCII_PATTERN},
    ),
    AfterValidator(_check_password),
]
AnyPassword = Annotated[str, Field(min_length=1, max_length=MAX_LENGTH)]
Email = Annotated[
    EmailStr,
    Field(
        max_length=254,
        description=(
            "An address that can receive mail. Domains under the special-use names "
            f"{', '.join(sorted(email_validator.SPECIAL_USE_DOMAIN_NAMES))} (RFC 6761 and "
            "kin), IP literals and quoted local parts are refused with 422. The pattern "
            "describes the ASCII addresses accepted; internationalized ones are accepted too."
        ),
        json_schema_extra={"pattern": EMAIL_PATTERN},
    ),
]
LoginEmail = Annotated[Line, StringConstraints(min_length=1, max_length=254)]


FullName = Annotated[
    Line,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_check_not_blank),
    Field(
        description=(
            "One line of at most 200 characters, not all whitespace; surrounding "
            "whitespace is trimmed."
        ),
        json_schema_extra={"pattern": NON_BLANK_LINE_PATTERN},
    ),
]
# Refresh and reset tokens are validated by looking them up, not here: a string of another
# shape is answered as an unknown token (401 on refresh and logout, 400 on reset), never 422.
IssuedToken = Annotated[
    str,
    Field(
        description=(
            f"A token as issued: {TOKEN_LENGTH} URL-safe base64 characters. Any other "
            "string is answered as an unknown token, not as a validation error."
        ),
        json_schema_extra={
            "minLength": TOKEN_LENGTH,
            "maxLength": TOKEN_LENGTH,
            "pattern": TOKEN_PATTERN,
        },
    ),
]
_PHONE = re.compile(r"\+?[0-9][0-9 ()\-]{4,30}")


def _check_phone(value: str) -> str:
    if not _PHONE.fullmatch(value):
        raise ValueError("must be a phone number: digits, spaces, ( ) - and an optional +")
    return value


Phone = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=32),
    AfterValidator(_check_phone),
    Field(
        description="Digits, spaces, ( ) and -, with an optional leading +; 5-31 of them.",
        json_schema_extra={"pattern": PHONE_PATTERN},
    ),
]
# Roles are data; set_roles refuses a name that is not a role (422). The enum names the
# contract's roles, which are the ones seeded.
RoleName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=50, pattern=r"^[a-z_]+$"),
    Field(json_schema_extra={"enum": [CUSTOMER, STAFF, ADMIN]}),
]


def _not_nullable(schema: dict[str, Any]) -> None:
    """Publish an optional field that may be omitted but not sent as null."""
    branches = schema.pop("anyOf")
    schema.pop("default", None)
    schema.update(next(branch for branch in branches if branch.get("type") != "null"))


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
    # The token's own bound is the use case's (no hashing of huge strings), so a long
    # string is an invalid token (401), not too long a field (422).
    model_config = ConfigDict(str_max_length=None)

    refresh_token: IssuedToken


class PasswordResetRequest(Strict):
    email: LoginEmail


class PasswordResetConfirm(Strict):
    # As in RefreshRequest; new_password has its own bound.
    model_config = ConfigDict(str_max_length=None)

    token: IssuedToken
    new_password: Password


class ProfileUpdate(Strict):
    """Only the fields sent change; ``phone: null`` clears the phone."""

    full_name: Annotated[FullName | None, Field(json_schema_extra=_not_nullable)] = None
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

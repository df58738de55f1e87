"""Domain errors, each named for the rule it enforces and carrying a stable code."""

from __future__ import annotations


class IdentityError(Exception):
    code = "identity-error"


class EmailAlreadyRegistered(IdentityError):
    code = "email-already-registered"

    def __init__(self) -> None:
        super().__init__("An account with this email already exists.")


class InvalidCredentials(IdentityError):
    code = "invalid-credentials"

    def __init__(self) -> None:
        super().__init__("The email or password is incorrect.")


class TooManyLoginFailures(IdentityError):
    code = "too-many-login-failures"

    def __init__(self, *, limit: int, retry_after: int) -> None:
        super().__init__("Too many failed logins for this account; try again later.")
        self.limit = limit
        self.retry_after = retry_after
        # The limit that fired, in the contract's rate-limit headers (the
        # gateway passes these on instead of its own per-IP numbers).
        self.headers = {
            "Retry-After": str(retry_after),
            "RateLimit-Limit": str(limit),
            "RateLimit-Remaining": "0",
            "RateLimit-Reset": str(retry_after),
        }


class RefreshTokenInvalid(IdentityError):
    code = "refresh-token-invalid"

    def __init__(self) -> None:
        super().__init__("The refresh token is invalid, expired or revoked.")


class RefreshTokenReused(IdentityError):
    code = "refresh-token-reused"

    def __init__(self) -> None:
        super().__init__("This refresh token was already used; its session has been revoked.")


class ResetTokenInvalid(IdentityError):
    code = "reset-token-invalid"

    def __init__(self) -> None:
        super().__init__("The password reset token is invalid, used or expired.")


class UserNotFound(IdentityError):
    code = "user-not-found"

    def __init__(self) -> None:
        super().__init__("No such user.")


class SessionNotFound(IdentityError):
    code = "session-not-found"

    def __init__(self) -> None:
        super().__init__("No such session.")


class UnknownRole(IdentityError):
    code = "unknown-role"

    def __init__(self, roles: list[str]) -> None:
        super().__init__(f"Unknown roles: {', '.join(sorted(roles))}.")


class LastAdminRemoval(IdentityError):
    code = "last-admin"

    def __init__(self) -> None:
        super().__init__("The last admin cannot lose the admin role.")


class SessionRevoked(IdentityError):
    code = "session-revoked"

    def __init__(self) -> None:
        super().__init__("This session has ended; log in again.")

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from users.domain.errors import InvalidCredentials, TooManyLoginFailures
from users.domain.model import ClientInfo, TokenPair, User
from users.domain.passwords import normalize_email
from users.domain.secrets import new_token
from users.use_cases.deps import IdentityDeps
from users.use_cases.ports import UnitOfWork


async def log_in(deps: IdentityDeps, *, email: str, password: str, client: ClientInfo) -> TokenPair:
    """Start a session: one refresh-token family per login.

    The attempt is taken from the account's budget before bcrypt runs and
    given back only when the password is right, so however many guesses
    arrive at once, at most the budget of them is ever evaluated. The
    throttle is keyed by the normalised email whether or not an account
    exists, and a missing account costs a bcrypt verify too, so neither the
    answer nor its timing tells which emails are registered.
    """
    key = normalize_email(email)
    lockout = await deps.throttle.take_attempt(key)
    if lockout is not None:
        raise TooManyLoginFailures(limit=lockout.limit, retry_after=lockout.retry_after)
    async with deps.uow(read_only=True) as uow:
        credentials = await uow.users.credentials_by_email(key)
    valid = await deps.hasher.verify(password, credentials.password_hash if credentials else None)
    if credentials is None or not valid:
        raise InvalidCredentials
    await deps.throttle.give_back(key)
    async with deps.uow() as uow:
        session = await uow.sessions.start(
            user_id=credentials.user.id,
            client=client,
            expires_at=deps.clock.now() + timedelta(seconds=deps.refresh_ttl_seconds),
        )
        pair = await issue_pair(deps, uow, credentials.user, session.id)
        await uow.commit()
    return pair


async def issue_pair(
    deps: IdentityDeps, uow: UnitOfWork, user: User, session_id: UUID
) -> TokenPair:
    """A fresh access token and the next refresh token of ``session_id``'s family."""
    refresh_token, refresh_hash = new_token()
    await uow.sessions.add_refresh_token(session_id, refresh_hash)
    permissions = await uow.users.permissions_of(user.roles)
    access_token = deps.tokens.issue(user=user, session_id=session_id, permissions=permissions)
    return TokenPair(
        access_token=access_token,
        refresh_token=refresh_token,
        expires_in=deps.tokens.ttl_seconds,
    )

from __future__ import annotations

from datetime import timedelta

from users.domain.errors import InvalidCredentials, TooManyLoginFailures
from users.domain.model import ClientInfo, TokenPair
from users.domain.passwords import normalize_email
from users.use_cases.ports_and_policy import PortsAndPolicy
from users.use_cases.token_pair import issue_pair


async def log_in(
    ports: PortsAndPolicy, *, email: str, password: str, client: ClientInfo
) -> TokenPair:
    """Start a session: one refresh-token family per login.

    The attempt is taken from the account's budget before bcrypt runs and
    given back only when the password is right, so however many guesses
    arrive at once, at most the budget of them is ever evaluated. The
    throttle is keyed by the normalised email whether or not an account
    exists, and a missing account costs a bcrypt verify too, so neither the
    answer nor its timing tells which emails are registered.
    """
    key = normalize_email(email)
    lockout = await ports.throttle.take_attempt(key)
    if lockout is not None:
        raise TooManyLoginFailures(limit=lockout.limit, retry_after=lockout.retry_after)
    async with ports.uow(read_only=True) as uow:
        credentials = await uow.users.credentials_by_email(key)
    valid = await ports.hasher.verify(password, credentials.password_hash if credentials else None)
    if credentials is None or not valid:
        raise InvalidCredentials
    await ports.throttle.give_back(key)
    async with ports.uow() as uow:
        session = await uow.sessions.start(
            user_id=credentials.user.id,
            client=client,
            expires_at=ports.clock.now() + timedelta(seconds=ports.policy.refresh_ttl_seconds),
        )
        pair = await issue_pair(ports, uow, credentials.user, session.id)
        await uow.commit()
    return pair

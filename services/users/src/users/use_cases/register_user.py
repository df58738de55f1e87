from __future__ import annotations

from users.domain.errors import EmailAlreadyRegistered
from users.domain.model import User
from users.domain.passwords import normalize_email
from users.domain.roles import CUSTOMER
from users.use_cases.ports_and_policy import PortsAndPolicy

USER_REGISTERED = "users.user_registered.v1"


async def register_user(
    ports: PortsAndPolicy, *, email: str, password: str, full_name: str
) -> User:
    """Create a customer account.

    A taken email is refused before bcrypt runs, so repeating a known email
    costs a lookup, not a hash. That look is only a shortcut: the insert's
    own uniqueness check (ON CONFLICT on the normalised email) decides when
    two registrations race.
    """
    async with ports.uow(read_only=True) as uow:
        if await uow.users.credentials_by_email(normalize_email(email)) is not None:
            raise EmailAlreadyRegistered
    password_hash = await ports.hasher.hash(password)
    async with ports.uow() as uow:
        user = await uow.users.add(
            email=email.strip(),
            password_hash=password_hash,
            full_name=full_name,
            roles=[CUSTOMER],
        )
        if user is None:
            raise EmailAlreadyRegistered
        await uow.add_event(
            USER_REGISTERED,
            {
                "user_id": str(user.id),
                "email": normalize_email(user.email),
                "full_name": user.full_name,
                "registered_at": user.created_at.isoformat(),
            },
        )
        await uow.commit()
    return user

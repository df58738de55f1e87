from __future__ import annotations

import structlog

from users.domain.passwords import normalize_email
from users.domain.roles import ADMIN, CUSTOMER, STAFF
from users.use_cases.ports_and_policy import PortsAndPolicy

log = structlog.get_logger(__name__)


async def bootstrap_admin(ports: PortsAndPolicy, *, email: str, password: str) -> bool:
    """Create the configured admin unless a user with that email exists.

    Safe when several replicas start at once: the unique email index decides.
    """
    async with ports.uow(read_only=True) as uow:
        if await uow.users.credentials_by_email(normalize_email(email)) is not None:
            return False
    password_hash = await ports.hasher.hash(password)
    async with ports.uow() as uow:
        user = await uow.users.add(
            email=email,
            password_hash=password_hash,
            full_name="Administrator",
            roles=[CUSTOMER, STAFF, ADMIN],
        )
        await uow.commit()
    if user is not None:
        log.info("admin_bootstrapped", email=email)
    return user is not None

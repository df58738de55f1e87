from __future__ import annotations

from ops.domain.dead_letters import IncomingDeadLetter
from ops.use_cases.ports import UnitOfWorkFactory


async def record_dead_letter(uow: UnitOfWorkFactory, letter: IncomingDeadLetter) -> bool:
    """Store ``letter`` once, however often it is delivered; True if it was new.

    It is committed when this returns, so the caller may acknowledge the message.
    """
    async with uow() as work:
        added = await work.dead_letters.add(letter)
        await work.commit()
    return added

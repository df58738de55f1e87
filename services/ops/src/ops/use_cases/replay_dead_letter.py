from __future__ import annotations

from uuid import UUID

from ops.domain.dead_letters import StoredDeadLetter, ensure_replayable
from ops.use_cases.ports import OpsPorts


async def replay_dead_letter(ports: OpsPorts, letter_id: UUID) -> StoredDeadLetter:
    """Put a dead letter's original message back on its queue, once.

    One transaction: the domain decides on the row as read, the conditional
    UPDATE marks it (of concurrent replays exactly one marks it; the others
    wait for its outcome and find it replayed), the message is published with
    the broker's confirmation, then the mark commits. A refused or failed
    publish raises and rolls the mark back, so the letter can be replayed
    later. Should the commit fail after the publish, the message went out
    unmarked; its own idempotency (job id, inbox) absorbs a second replay.
    """
    async with ports.uow() as uow:
        ensure_replayable(await uow.dead_letters.get(letter_id))
        marked = await uow.dead_letters.mark_replayed(letter_id)
        if marked is None:
            # A concurrent replay marked it between our read and our mark and has
            # committed since: read it again and let the domain say why.
            ensure_replayable(await uow.dead_letters.get(letter_id))
            raise RuntimeError(f"dead letter {letter_id} was replayable but could not be marked")
        await ports.publisher.republish(marked)
        await uow.commit()
    return marked

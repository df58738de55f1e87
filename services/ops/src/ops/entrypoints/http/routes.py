"""The dead-letter routes of the public contract (ADR 0013); every one needs ops:admin."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, status

from emporium_kit.fields import Line
from emporium_kit.pagination import InvalidCursor
from ops.entrypoints.http.dependencies import OPS_ADMIN, Components, OpsAdmin
from ops.entrypoints.http.schemas import DeadLetterOut, DeadLetterPage
from ops.use_cases.list_dead_letters import list_dead_letters as list_dead_letters_use_case
from ops.use_cases.replay_dead_letter import replay_dead_letter as replay_dead_letter_use_case

# The route functions are named for the OpenAPI operation ids FastAPI derives from them.
dead_letters = APIRouter(prefix="/api/v1/admin/dead-letters", tags=["dead-letters"])

_AUTH: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing, invalid or expired token"},
    403: {"description": f"Needs {OPS_ADMIN}"},
}


@dead_letters.get(
    "",
    summary="Dead letters of every service, newest first",
    responses={**_AUTH, 400: {"description": "Bad cursor"}},
)
async def list_dead_letters(
    components: Components,
    _admin: OpsAdmin,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
    queue: Annotated[
        Line | None,
        Query(
            min_length=1,
            max_length=255,
            description="Only the dead letters of this queue (exact match).",
        ),
    ] = None,
) -> DeadLetterPage:
    codec = components.dead_letter_cursors
    after: tuple[datetime, UUID] | None = None
    if cursor is not None:
        position = codec.decode(cursor)
        try:
            after = (datetime.fromisoformat(position["r"]), UUID(position["i"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidCursor from exc
    letters = await list_dead_letters_use_case(
        components.ports, limit=limit + 1, after=after, queue=queue
    )
    page, more = letters[:limit], len(letters) > limit
    next_cursor = (
        codec.encode({"r": page[-1].received_at.isoformat(), "i": str(page[-1].id)})
        if more
        else None
    )
    return DeadLetterPage(
        items=[DeadLetterOut.of(letter) for letter in page], next_cursor=next_cursor
    )


@dead_letters.post(
    "/{letter_id}/replay",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Put a dead letter's original message back on its queue, once",
    responses={
        **_AUTH,
        404: {"description": "No such dead letter"},
        409: {
            "description": "Already replayed (`already-replayed`), its queue no longer exists "
            "(`queue-gone`), or it is no dead letter (`not-replayable`); nothing was published"
        },
        503: {"description": "RabbitMQ or the database is unavailable; nothing changed"},
    },
)
async def replay_dead_letter(
    letter_id: UUID, components: Components, _admin: OpsAdmin
) -> DeadLetterOut:
    return DeadLetterOut.of(await replay_dead_letter_use_case(components.ports, letter_id))

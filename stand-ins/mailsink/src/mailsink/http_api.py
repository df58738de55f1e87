"""The HTTP side of the sink: a Starlette app speaking a subset of Mailpit's API v1."""

from typing import Final

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from mailsink.mailbox import Mailbox
from mailsink.mailpit_json import message_json, messages_json
from mailsink.message import CapturedMessage
from mailsink.search import SearchQuery

DEFAULT_LIMIT: Final = 50


class OrjsonResponse(Response):
    media_type = "application/json"

    def render(self, content: object) -> bytes:
        return orjson.dumps(content)


def _error(status_code: int, message: str) -> OrjsonResponse:
    return OrjsonResponse({"Error": message}, status_code=status_code)


def _int_param(request: Request, name: str, default: int, minimum: int) -> int:
    # Mailpit ignores values it cannot read rather than rejecting the request.
    try:
        value = int(request.query_params.get(name, default))
    except ValueError:
        return default
    return value if value >= minimum else default


def _paging(request: Request) -> tuple[int, int]:
    return _int_param(request, "start", 0, 0), _int_param(request, "limit", DEFAULT_LIMIT, 1)


def _ids_to_delete(body: bytes) -> list[str]:
    """The IDs of a delete request's ``{"IDs": [...]}`` body; empty means "all"."""
    if not body.strip():
        return []
    try:
        payload: object = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise ValueError('the body must be JSON like {"IDs": [...]}') from error
    if not isinstance(payload, dict):
        raise ValueError('the body must be JSON like {"IDs": [...]}')
    ids: object = payload.get("IDs")
    if ids is None:
        return []
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ValueError("IDs must be a list of message IDs")
    return [str(i) for i in ids]


def create_app(mailbox: Mailbox) -> Starlette:
    """The HTTP API over ``mailbox``."""

    def find(message_id: str) -> CapturedMessage | None:
        return mailbox.latest() if message_id == "latest" else mailbox.get(message_id)

    async def list_messages(request: Request) -> Response:
        start, limit = _paging(request)
        return OrjsonResponse(
            messages_json(
                mailbox.page(start, limit),
                start=start,
                total=len(mailbox),
                unread=mailbox.unread,
                matched=len(mailbox),
            )
        )

    async def delete_messages(request: Request) -> Response:
        body = await request.body()
        try:
            ids = _ids_to_delete(body)
        except ValueError as error:
            return _error(400, str(error))
        if ids:
            mailbox.delete(ids)
        else:
            mailbox.clear()
        return PlainTextResponse("ok")

    async def get_message(request: Request) -> Response:
        message = find(request.path_params["id"])
        if message is None:
            return _error(404, "message not found")
        message.read = True
        return OrjsonResponse(message_json(message))

    async def get_raw_message(request: Request) -> Response:
        message = find(request.path_params["id"])
        if message is None:
            return _error(404, "message not found")
        return Response(message.raw, media_type="text/plain; charset=utf-8")

    def query_of(request: Request) -> SearchQuery | None:
        text = request.query_params.get("query", "").strip()
        return SearchQuery.parse(text) if text else None

    async def search(request: Request) -> Response:
        query = query_of(request)
        if query is None:
            return _error(400, "no search query")
        start, limit = _paging(request)
        found = mailbox.search(query)
        return OrjsonResponse(
            messages_json(
                found[start : start + limit],
                start=start,
                total=len(mailbox),
                unread=mailbox.unread,
                matched=len(found),
            )
        )

    async def delete_search(request: Request) -> Response:
        query = query_of(request)
        if query is None:
            return _error(400, "no search query")
        mailbox.delete([message.id for message in mailbox.search(query)])
        return PlainTextResponse("ok")

    async def alive(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def health(request: Request) -> Response:
        return OrjsonResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/api/v1/messages", list_messages, methods=["GET"]),
            Route("/api/v1/messages", delete_messages, methods=["DELETE"]),
            Route("/api/v1/message/{id}", get_message, methods=["GET"]),
            Route("/api/v1/message/{id}/raw", get_raw_message, methods=["GET"]),
            Route("/api/v1/search", search, methods=["GET"]),
            Route("/api/v1/search", delete_search, methods=["DELETE"]),
            Route("/livez", alive, methods=["GET"]),
            Route("/readyz", alive, methods=["GET"]),
            Route("/health/live", health, methods=["GET"]),
            Route("/health/ready", health, methods=["GET"]),
        ]
    )

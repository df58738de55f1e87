"""Step 5 of a request: read the body that is forwarded, and check that it is JSON.

Its size and media type were checked by the kit's ``BodyGuardMiddleware``,
which also cuts a chunked body off past ``MAX_BODY_BYTES`` (ADR 0008): what is
read here is bounded. A body that says it is JSON must parse, so a service
never sees a malformed one.
"""

from __future__ import annotations

import orjson
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import Receive

from emporium_kit.middleware import is_json_media_type
from emporium_kit.problems import problem_response


class ClientDisconnected(Exception):
    """The client went away while its request body was being read."""


class MalformedBody(Exception):
    """The body is not what its ``Content-Type`` says."""

    def response(self) -> Response:
        return problem_response(
            400, code="malformed-json", detail="The request body is not valid JSON."
        )


async def read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def read_forwarded_body(headers: Headers, receive: Receive) -> bytes | None:
    """The request's body (None when it declares none); :class:`MalformedBody` if bad JSON."""
    if "content-length" not in headers and "transfer-encoding" not in headers:
        return None
    body = await read_body(receive)
    if body and is_json_media_type(headers.get("content-type")):
        try:
            orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise MalformedBody from exc
    return body

"""Edge checks every request passes before anything else looks at it.

* Oversized header blocks get 431 (uvicorn's httptools parser has no limit of
  its own, and h11's only answers a bare 400).
* Path tricks get 400 and are never routed or forwarded: encoded slashes,
  backslashes and dots (``%2F``, ``%5C``, ``%2E``), NUL and other control
  characters, empty segments (``//``) and dot segments (``/api/v1/../internal``).
  A service behind the gateway may normalise paths differently from us; refusing
  anything ambiguous means the path we authorised is the path it serves.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Receive, Scope, Send

from emporium_kit.problems import problem_response

_ENCODED_SEPARATOR = re.compile(rb"%(2f|5c|2e|00)", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f\\]")


def path_problem(path: str, raw_path: bytes | None) -> str | None:
    """Why ``path`` is refused, or None when it is a plain, canonical path."""
    if not path.startswith("/"):
        return "The path must start with '/'."
    if raw_path is not None and _ENCODED_SEPARATOR.search(raw_path):
        return "Encoded slashes, backslashes, dots and NUL are not accepted in paths."
    if _CONTROL.search(path):
        return "Control characters and backslashes are not accepted in paths."
    if path == "/":
        return None
    segments = path[1:].split("/")
    # A trailing slash leaves one empty segment at the end; any other is '//'.
    inner = segments[:-1] if segments[-1] == "" else segments
    for segment in inner:
        if segment == "":
            return "Empty path segments ('//') are not accepted."
        if segment in (".", ".."):
            return "Dot segments are not accepted in paths."
    return None


class EdgeGuardMiddleware:
    def __init__(self, app: ASGIApp, *, max_header_bytes: int) -> None:
        self.app = app
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header_bytes = sum(len(name) + len(value) + 4 for name, value in scope["headers"])
        if header_bytes > self.max_header_bytes:
            await problem_response(
                431,
                code="headers-too-large",
                detail=f"Request headers are limited to {self.max_header_bytes} bytes.",
                headers={"Connection": "close"},
            )(scope, receive, send)
            return
        reason = path_problem(scope["path"], scope.get("raw_path"))
        if reason is not None:
            await problem_response(400, code="invalid-path", detail=reason)(scope, receive, send)
            return
        await self.app(scope, receive, send)

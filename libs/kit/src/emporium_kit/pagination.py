"""Opaque, signed keyset cursors.

A cursor is the position after the last item of a page, serialised and signed
with HMAC-SHA256, so clients can hand it back but cannot forge or edit it (a
tampered cursor is a 400, per the contract).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

import orjson

MAX_CURSOR_LENGTH = 1024


class InvalidCursor(Exception):
    code = "invalid-cursor"

    def __init__(self) -> None:
        super().__init__("The cursor is invalid or was tampered with.")


class CursorCodec:
    def __init__(self, secret: bytes, *, scope: str) -> None:
        # The scope keeps a cursor of one listing from being replayed on another.
        self._key = hmac.new(secret, scope.encode(), hashlib.sha256).digest()

    def encode(self, position: Mapping[str, Any]) -> str:
        payload = base64.urlsafe_b64encode(orjson.dumps(dict(position))).rstrip(b"=")
        signature = base64.urlsafe_b64encode(self._sign(payload)[:16]).rstrip(b"=")
        return (payload + b"." + signature).decode()

    def decode(self, cursor: str) -> dict[str, Any]:
        if len(cursor) > MAX_CURSOR_LENGTH or cursor.count(".") != 1:
            raise InvalidCursor
        payload, _, signature = cursor.encode("ascii", "replace").partition(b".")
        try:
            given = base64.urlsafe_b64decode(signature + b"=" * (-len(signature) % 4))
            if not hmac.compare_digest(given, self._sign(payload)[:16]):
                raise InvalidCursor
            position = orjson.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
        except (ValueError, orjson.JSONDecodeError) as exc:
            raise InvalidCursor from exc
        if not isinstance(position, dict):
            raise InvalidCursor
        return position

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()

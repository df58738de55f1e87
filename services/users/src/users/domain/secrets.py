"""Opaque single-use secrets (refresh and password-reset tokens).

Only SHA-256 digests are stored: 256 random bits need no slow hash, and a
database leak then reveals no usable token.
"""

from __future__ import annotations

import hashlib
import secrets

TOKEN_BYTES = 32
MAX_TOKEN_LENGTH = 128


def new_token() -> tuple[str, bytes]:
    token = secrets.token_urlsafe(TOKEN_BYTES)
    return token, digest(token)


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()

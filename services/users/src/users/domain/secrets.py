"""Opaque single-use secrets (refresh and password-reset tokens).

Only SHA-256 digests are stored: 256 random bits need no slow hash, and a
database leak then reveals no usable token.
"""

from __future__ import annotations

import hashlib
import re
import secrets

TOKEN_BYTES = 32
# ``secrets.token_urlsafe`` writes unpadded URL-safe base64: 32 bytes are 43 characters.
TOKEN_LENGTH = 43
TOKEN_PATTERN = r"^[A-Za-z0-9_-]{43}$"  # noqa: S105 - a shape, not a secret
MAX_TOKEN_LENGTH = 128
_TOKEN_SHAPE = re.compile(TOKEN_PATTERN)


def new_token() -> tuple[str, bytes]:
    token = secrets.token_urlsafe(TOKEN_BYTES)
    return token, digest(token)


def is_token_shaped(token: str) -> bool:
    """Whether ``token`` could have come from ``new_token`` (it may still be unknown)."""
    return _TOKEN_SHAPE.fullmatch(token) is not None


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()

"""bcrypt password hashing, off the event loop.

bcrypt reads at most 72 bytes, and bcrypt 5 refuses longer input, while the
contract allows 128 characters (up to 512 UTF-8 bytes). Passwords are first
reduced with SHA-256 and base64 (44 bytes), so every character counts.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib

import bcrypt


def _prehash(password: str) -> bytes:
    return base64.b64encode(hashlib.sha256(password.encode("utf-8", "surrogatepass")).digest())


class BcryptHasher:
    def __init__(self, rounds: int) -> None:
        self._rounds = rounds
        # Verified against when no account exists, so a miss costs what a hit costs.
        self._decoy = bcrypt.hashpw(b"decoy", bcrypt.gensalt(rounds)).decode()

    async def hash(self, password: str) -> str:
        salt = bcrypt.gensalt(self._rounds)
        hashed = await asyncio.to_thread(bcrypt.hashpw, _prehash(password), salt)
        return hashed.decode()

    async def verify(self, password: str, password_hash: str | None) -> bool:
        target = (password_hash or self._decoy).encode()
        try:
            ok = await asyncio.to_thread(bcrypt.checkpw, _prehash(password), target)
        except ValueError:
            return False
        return ok and password_hash is not None

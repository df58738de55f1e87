"""Access tokens: short-lived EdDSA JWTs that the gateway verifies on its own."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from uuid import UUID

import jwt

from emporium_kit.identity.tokens import ALGORITHM, AUDIENCE, ISSUER
from users.adapters.signing_keys import SigningKey
from users.domain.model import User


class JwtIssuer:
    def __init__(self, key: SigningKey, *, ttl_seconds: int) -> None:
        self._key = key
        self.ttl_seconds = ttl_seconds

    def issue(self, *, user: User, session_id: UUID, permissions: Sequence[str]) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": str(user.id),
            "sid": str(session_id),
            "roles": list(user.roles),
            "perms": list(permissions),
            "ver": user.token_version,
            "iat": now,
            "exp": now + self.ttl_seconds,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(
            claims, self._key.private_key, algorithm=ALGORITHM, headers={"kid": self._key.kid}
        )

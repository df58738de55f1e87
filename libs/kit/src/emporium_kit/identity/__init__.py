"""The identity part: who is calling, proven by an access token, and what they may do.

* :mod:`emporium_kit.identity.tokens`: EdDSA access-token verification against
  the users service's JWKS (:class:`TokenVerifier`, :class:`Principal`).
* :mod:`emporium_kit.identity.revocations`: the Redis revocation list that
  users writes and every verifier reads.
* :mod:`emporium_kit.identity.caller`: FastAPI dependencies, so every service
  authenticates and enforces RBAC the same way: :data:`Authenticated` (the
  caller's :class:`Principal`, 401 without a valid token) and
  :func:`require_permission` (403 without the permission).

Needs ``emporium-kit[identity]`` (PyJWT with its crypto, cachetools, Redis).
"""

from emporium_kit.identity.caller import (
    TOKEN_VERIFIER,
    Authenticated,
    authenticated,
    require_permission,
)
from emporium_kit.identity.tokens import (
    ALGORITHM,
    AUDIENCE,
    ISSUER,
    InvalidToken,
    Principal,
    TokenVerifier,
    UnknownSigningKey,
    bearer_token,
    http_jwks_fetcher,
)

__all__ = [
    "ALGORITHM",
    "AUDIENCE",
    "ISSUER",
    "TOKEN_VERIFIER",
    "Authenticated",
    "InvalidToken",
    "Principal",
    "TokenVerifier",
    "UnknownSigningKey",
    "authenticated",
    "bearer_token",
    "http_jwks_fetcher",
    "require_permission",
]

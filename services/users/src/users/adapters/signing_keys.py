"""The Ed25519 key that signs access tokens, and the JWKS that publishes it.

Production passes the PEM through ``USERS_JWT_PRIVATE_KEY``. In development a
key is generated once into an ignored file, so tokens survive restarts.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    def public_jwk(self) -> dict[str, Any]:
        return {**_okp_members(self.public_key), "kid": self.kid, "alg": "EdDSA", "use": "sig"}

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.public_jwk()]}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _okp_members(public_key: Ed25519PublicKey) -> dict[str, str]:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"crv": "Ed25519", "kty": "OKP", "x": _b64(raw)}


def _thumbprint(public_key: Ed25519PublicKey) -> str:
    """RFC 7638 thumbprint: a kid that changes exactly when the key does."""
    canonical = json.dumps(_okp_members(public_key), separators=(",", ":"), sort_keys=True)
    return _b64(hashlib.sha256(canonical.encode()).digest())


def load_signing_key(pem: str | None, fallback_file: Path) -> SigningKey:
    if pem:
        private = serialization.load_pem_private_key(pem.encode(), password=None)
    elif fallback_file.exists():
        private = serialization.load_pem_private_key(fallback_file.read_bytes(), password=None)
    else:
        private = Ed25519PrivateKey.generate()
        fallback_file.parent.mkdir(parents=True, exist_ok=True)
        data = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        # Written atomically and private to the owner; two processes racing
        # here both end up with one of the two keys, then reload it.
        tmp = fallback_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.chmod(0o600)
        try:
            os.link(tmp, fallback_file)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        private = serialization.load_pem_private_key(fallback_file.read_bytes(), password=None)
    if not isinstance(private, Ed25519PrivateKey):
        raise ValueError("the access-token signing key must be an Ed25519 key")
    return SigningKey(kid=_thumbprint(private.public_key()), private_key=private)

"""JWKS refreshes: single-flight, at most one per interval even when they fail."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from emporium_kit.identity.tokens import (
    AUDIENCE,
    ISSUER,
    InvalidToken,
    TokenVerifier,
    UnknownSigningKey,
)


class Key:
    def __init__(self) -> None:
        self.kid = uuid.uuid4().hex
        self.private = Ed25519PrivateKey.generate()

    def jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = OKPAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid}

    def token(self) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": str(uuid.uuid4()),
            "sid": str(uuid.uuid4()),
            "roles": ["customer"],
            "perms": [],
            "ver": 0,
            "iat": now,
            "exp": now + 600,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self.private, algorithm="EdDSA", headers={"kid": self.kid})


class Jwks:
    """A JWKS endpoint that counts fetches and can be held open or made to fail."""

    def __init__(self, *keys: Key) -> None:
        self.keys = list(keys)
        self.fetches = 0
        self.failing = False
        self.gate = asyncio.Event()
        self.gate.set()

    async def fetch(self) -> Mapping[str, Any]:
        self.fetches += 1
        await self.gate.wait()
        if self.failing:
            raise ValueError("users is down")
        return {"keys": [key.jwk() for key in self.keys]}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_forged_kids_share_one_fetch_and_never_stall_a_valid_token() -> None:
    good = Key()
    jwks = Jwks(good)
    clock = Clock()
    verifier = TokenVerifier(jwks.fetch, min_refresh_interval=10.0, clock=clock)
    await verifier.refresh()
    clock.now += 10.0  # a refresh is due again
    jwks.fetches = 0
    valid = good.token()

    jwks.gate.clear()  # the refresh the forgeries trigger hangs until released
    forged = [asyncio.create_task(verifier.verify(Key().token())) for _ in range(200)]
    await asyncio.sleep(0)
    # Answered while 200 forgeries wait on a JWKS fetch that has not returned.
    principal = await asyncio.wait_for(verifier.verify(valid), timeout=1.0)
    assert jwks.fetches == 1
    assert not jwks.gate.is_set()
    jwks.gate.set()
    outcomes = await asyncio.gather(*forged, return_exceptions=True)

    assert principal.roles == frozenset({"customer"})
    assert all(isinstance(outcome, UnknownSigningKey) for outcome in outcomes)
    assert jwks.fetches == 1


async def test_a_key_brought_by_a_refresh_serves_everyone_who_waited_for_it() -> None:
    old, rotated = Key(), Key()
    jwks = Jwks(old)
    verifier = TokenVerifier(jwks.fetch, min_refresh_interval=0.0)
    await verifier.refresh()
    jwks.keys.append(rotated)
    jwks.fetches = 0

    results = await asyncio.gather(*(verifier.verify(rotated.token()) for _ in range(50)))

    assert len(results) == 50
    assert jwks.fetches == 1


async def test_failed_refreshes_back_off_and_count_against_the_interval() -> None:
    clock = Clock()
    jwks = Jwks()
    jwks.failing = True
    verifier = TokenVerifier(jwks.fetch, min_refresh_interval=10.0, clock=clock)

    for _ in range(5):
        with pytest.raises(UnknownSigningKey):
            await verifier.verify(Key().token())
    assert jwks.fetches == 1

    clock.now += 10.0  # the first failure waits one interval
    with pytest.raises(UnknownSigningKey):
        await verifier.verify(Key().token())
    assert jwks.fetches == 2

    clock.now += 10.0  # the second failure doubled it
    with pytest.raises(UnknownSigningKey):
        await verifier.verify(Key().token())
    assert jwks.fetches == 2
    clock.now += 10.0
    jwks.failing = False
    good = Key()
    jwks.keys.append(good)
    assert (await verifier.verify(good.token())).roles == frozenset({"customer"})
    assert jwks.fetches == 3


async def test_without_may_refresh_an_unknown_kid_costs_no_fetch() -> None:
    jwks = Jwks()
    verifier = TokenVerifier(jwks.fetch, min_refresh_interval=0.0)

    with pytest.raises(UnknownSigningKey):
        await verifier.verify(Key().token(), may_refresh=False)
    assert jwks.fetches == 0


async def test_a_token_signed_by_another_key_with_a_known_kid_is_refused() -> None:
    good = Key()
    verifier = TokenVerifier(Jwks(good).fetch)
    await verifier.refresh()
    impostor = Key()
    impostor.kid = good.kid

    with pytest.raises(InvalidToken, match="invalid"):
        await verifier.verify(impostor.token())

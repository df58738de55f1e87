"""Through the gateway, a token of the wrong shape gets the invalid-token answer, not a 422."""

from __future__ import annotations

from typing import Any

import httpx


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    del body["request_id"]
    return body


async def test_an_access_token_sent_to_refresh_or_logout_is_401_like_an_unknown_token(
    api: httpx.AsyncClient, shopper: Any
) -> None:
    person = await shopper("mixup")
    access_token = person.pair["access_token"]
    unknown = _problem(
        await api.post("/api/v1/auth/refresh", json={"refresh_token": "A" * 43}), 401
    )
    assert unknown["type"].endswith("/refresh-token-invalid")
    for path in ("/api/v1/auth/refresh", "/api/v1/auth/logout"):
        response = await api.post(path, json={"refresh_token": access_token})
        assert _problem(response, 401) == unknown
    # The mistaken logout ended nothing.
    assert (await person.me()).status_code == 200


async def test_a_reset_confirm_with_an_access_token_is_400_like_an_unknown_token(
    api: httpx.AsyncClient, shopper: Any
) -> None:
    person = await shopper("resetmixup")
    path = "/api/v1/auth/password-reset/confirm"
    unknown = await api.post(path, json={"token": "A" * 43, "new_password": "new-pass-1234"})
    wrong = await api.post(
        path, json={"token": person.pair["access_token"], "new_password": "new-pass-1234"}
    )
    assert _problem(wrong, 400) == _problem(unknown, 400)

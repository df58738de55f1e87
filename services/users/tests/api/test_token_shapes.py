"""A refresh or reset token of the wrong shape is an invalid token, not an invalid field.

The OpenAPI publishes the issued shape (43 URL-safe base64 characters), but a
client holding some other string, an access token say, gets the answer any
invalid token gets: 401 on refresh and logout, 400 on reset confirm.
"""

from __future__ import annotations

from typing import Any

import pytest

WRONG_SHAPES = [
    pytest.param("", id="empty"),
    pytest.param("A" * 42, id="one-short"),
    pytest.param("A" * 44, id="one-long"),
    pytest.param("A" * 42 + "=", id="padded"),
    pytest.param("A" * 42 + "\n", id="control-char"),
    pytest.param("x" * 5000, id="past-the-string-bound"),
]
UNKNOWN = "A" * 43


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    del body["request_id"]
    return body


async def test_an_access_token_given_as_refresh_token_is_401_like_an_unknown_one(
    identity: Any,
) -> None:
    await identity.register("mixup@example.com")
    pair = await identity.login("mixup@example.com")
    assert len(pair["access_token"]) > 43
    unknown = _problem(await identity.refresh(UNKNOWN), 401)
    assert unknown["type"].endswith("/refresh-token-invalid")
    assert _problem(await identity.refresh(pair["access_token"]), 401) == unknown
    logout = await identity.http.post(
        "/api/v1/auth/logout", json={"refresh_token": pair["access_token"]}
    )
    assert _problem(logout, 401) == unknown
    # The session was not ended by the mistaken logout.
    assert (await identity.refresh(pair["refresh_token"])).status_code == 200


@pytest.mark.parametrize("token", WRONG_SHAPES)
async def test_refresh_with_a_wrongly_shaped_token_is_401_like_an_unknown_one(
    identity: Any, token: str
) -> None:
    unknown = _problem(await identity.refresh(UNKNOWN), 401)
    assert _problem(await identity.refresh(token), 401) == unknown


@pytest.mark.parametrize("token", WRONG_SHAPES)
async def test_logout_with_a_wrongly_shaped_token_is_401_like_a_refresh(
    identity: Any, token: str
) -> None:
    unknown = _problem(await identity.refresh(UNKNOWN), 401)
    response = await identity.http.post("/api/v1/auth/logout", json={"refresh_token": token})
    assert _problem(response, 401) == unknown


@pytest.mark.parametrize("token", WRONG_SHAPES)
async def test_reset_confirm_with_a_wrongly_shaped_token_is_400_like_an_unknown_one(
    identity: Any, token: str
) -> None:
    async def confirm(reset_token: str) -> Any:
        return await identity.http.post(
            "/api/v1/auth/password-reset/confirm",
            json={"token": reset_token, "new_password": "brand-new-pass-1"},
        )

    unknown = _problem(await confirm(UNKNOWN), 400)
    assert unknown["type"].endswith("/reset-token-invalid")
    assert _problem(await confirm(token), 400) == unknown


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/auth/refresh", {"refresh_token": 12345}),
        ("/api/v1/auth/logout", {"refresh_token": None}),
        ("/api/v1/auth/password-reset/confirm", {"token": ["A" * 43], "new_password": "pass-1234"}),
    ],
)
async def test_a_token_that_is_not_a_string_is_still_422(
    identity: Any, path: str, body: dict[str, Any]
) -> None:
    problem = _problem(await identity.http.post(path, json=body), 422)
    assert problem["errors"]

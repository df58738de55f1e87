"""The rates stand-in answers like Frankfurter, deterministically, and misbehaves on request."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import date

import httpx
import pytest
import pytest_asyncio

from fxstandin import RatesStandIn, StandInSettings

RATES_DATE = date(2026, 12, 1)


@pytest_asyncio.fixture
async def standin() -> AsyncIterator[RatesStandIn]:
    async with RatesStandIn(StandInSettings(port=0, rates_date=RATES_DATE)) as running:
        yield running


@pytest_asyncio.fixture
async def client(standin: RatesStandIn) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=standin.url, timeout=5) as http:
        yield http


async def test_latest_answers_frankfurters_shape_for_a_base_and_symbols(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/latest", params={"base": "USD", "symbols": "EUR,GBP,JPY"})

    assert response.status_code == 200
    assert response.json() == {
        "amount": 1.0,
        "base": "USD",
        "date": "2026-12-01",
        "rates": {"EUR": 0.9208, "GBP": 0.7875, "JPY": 151.8},
    }


async def test_cross_rates_are_deterministic_and_omit_the_base(client: httpx.AsyncClient) -> None:
    first = (await client.get("/latest", params={"base": "EUR"})).json()
    second = (await client.get("/latest", params={"from": "EUR"})).json()

    assert first == second
    assert "EUR" not in first["rates"]
    assert first["rates"]["USD"] == 1.08601  # 1 / 0.9208, six significant digits
    assert first["rates"]["KWD"] == 0.333949
    assert len(first["rates"]) >= 30


async def test_an_unknown_base_or_symbol_is_404_like_frankfurter(client: httpx.AsyncClient) -> None:
    for params in ({"base": "XYZ"}, {"base": "USD", "symbols": "EUR,ABC"}):
        response = await client.get("/latest", params=params)
        assert response.status_code == 404
        assert response.json() == {"message": "not found"}


async def test_a_bad_amount_is_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/latest", params={"base": "USD", "amount": "ten"})

    assert response.status_code == 422
    assert response.json() == {"message": "invalid amount"}


async def test_currencies_lists_every_code_with_its_name(client: httpx.AsyncClient) -> None:
    body = (await client.get("/currencies")).json()

    assert body["USD"] == "United States Dollar"
    assert body["KWD"] == "Kuwaiti Dinar"
    assert list(body) == sorted(body)


async def test_control_makes_it_fail_slow_and_move_then_reset(
    client: httpx.AsyncClient,
) -> None:
    failing = await client.put("/_control", json={"fail_status": 503})
    assert failing.json()["fail_status"] == 503
    assert (await client.get("/latest", params={"base": "USD"})).status_code == 503

    await client.put("/_control", json={"fail_status": None, "delay_seconds": 0.3})
    started = time.perf_counter()
    slow = await client.get("/latest", params={"base": "USD", "symbols": "EUR"})
    assert slow.status_code == 200
    assert time.perf_counter() - started >= 0.3

    await client.put("/_control", json={"delay_seconds": 0, "multiplier": "2"})
    moved = await client.get("/latest", params={"base": "USD", "symbols": "EUR"})
    assert moved.json()["rates"] == {"EUR": 1.8416}

    state = (await client.get("/_control")).json()
    assert state["requests"] == 3

    reset = (await client.post("/_control/reset")).json()
    assert reset == {"fail_status": None, "delay_seconds": 0.0, "multiplier": "1", "requests": 0}


async def test_control_refuses_bad_changes(client: httpx.AsyncClient) -> None:
    for body in ({"fail_status": 200}, {"delay_seconds": -1}, {"multiplier": "0"}, {"x": 1}):
        response = await client.put("/_control", json=body)
        assert response.status_code == 422, body
    assert (await client.put("/_control", content=b"[")).status_code == 400


async def test_the_environment_can_start_it_failing() -> None:
    settings = StandInSettings(port=0, fail_status=500, control=False)
    async with (
        RatesStandIn(settings) as standin,
        httpx.AsyncClient(base_url=standin.url, timeout=5) as http,
    ):
        assert (await http.get("/latest")).status_code == 500
        assert (await http.get("/_control")).status_code == 404


@pytest.mark.parametrize("port", [0])
async def test_stop_frees_the_port(port: int) -> None:
    standin = RatesStandIn(StandInSettings(port=port))
    await standin.start()
    url = standin.url
    await standin.stop()
    await standin.stop()
    async with httpx.AsyncClient(timeout=2) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"{url}/health/live")

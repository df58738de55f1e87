"""The HTTP side of the stand-in: Frankfurter's ``/latest`` and ``/currencies``, plus the
test-only ``/_control`` endpoints that make it fail, slow down or move its rates."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fxstandin.rates import CURRENCY_NAMES, UnknownCurrency, rates_for


class OrjsonResponse(Response):
    media_type = "application/json"

    def render(self, content: object) -> bytes:
        return orjson.dumps(content)


def _message(status_code: int, message: str) -> OrjsonResponse:
    # Frankfurter's error body.
    return OrjsonResponse({"message": message}, status_code=status_code)


@dataclass
class Behaviour:
    """How the stand-in answers rates requests now; tests change it through ``/_control``."""

    fail_status: int | None = None
    delay_seconds: float = 0.0
    multiplier: Decimal = Decimal(1)
    requests: int = 0
    rates_date: date | None = None
    _initial: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._initial = {
            "fail_status": self.fail_status,
            "delay_seconds": self.delay_seconds,
            "multiplier": self.multiplier,
        }

    def reset(self) -> None:
        for name, value in self._initial.items():
            setattr(self, name, value)
        self.requests = 0

    def as_json(self) -> dict[str, object]:
        return {
            "fail_status": self.fail_status,
            "delay_seconds": self.delay_seconds,
            "multiplier": str(self.multiplier),
            "requests": self.requests,
        }

    def update(self, changes: dict[str, object]) -> None:
        """Apply a ``PUT /_control`` body; raises ValueError on a field it cannot take."""
        unknown = set(changes) - {"fail_status", "delay_seconds", "multiplier"}
        if unknown:
            raise ValueError(f"unknown fields: {sorted(unknown)}")
        if "fail_status" in changes:
            status = changes["fail_status"]
            if status is not None and (
                not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599
            ):
                raise ValueError("fail_status must be null or an HTTP status 400-599")
            self.fail_status = status
        if "delay_seconds" in changes:
            delay = changes["delay_seconds"]
            if (
                not isinstance(delay, int | float)
                or isinstance(delay, bool)
                or not 0 <= delay <= 300
            ):
                raise ValueError("delay_seconds must be a number of seconds, 0-300")
            self.delay_seconds = float(delay)
        if "multiplier" in changes:
            try:
                multiplier = Decimal(str(changes["multiplier"]))
            except InvalidOperation as error:
                raise ValueError("multiplier must be a positive decimal") from error
            if not multiplier.is_finite() or multiplier <= 0:
                raise ValueError("multiplier must be a positive decimal")
            self.multiplier = multiplier


def _as_json_number(value: Decimal) -> float | int:
    # Frankfurter sends rates as JSON numbers; a client reads them as decimals.
    return int(value) if value == value.to_integral_value() else float(value)


def create_app(behaviour: Behaviour, *, control: bool = True) -> Starlette:
    """The API, answering as ``behaviour`` says."""

    async def misbehave() -> Response | None:
        behaviour.requests += 1
        if behaviour.delay_seconds:
            await asyncio.sleep(behaviour.delay_seconds)
        if behaviour.fail_status is not None:
            return _message(behaviour.fail_status, "the rates stand-in is told to fail")
        return None

    async def latest(request: Request) -> Response:
        failure = await misbehave()
        if failure is not None:
            return failure
        params = request.query_params
        # Frankfurter takes ``from``/``to`` as aliases of ``base``/``symbols``.
        base = (params.get("base") or params.get("from") or "EUR").upper()
        raw_symbols = params.get("symbols") or params.get("to")
        symbols = (
            [code.strip().upper() for code in raw_symbols.split(",") if code.strip()]
            if raw_symbols
            else None
        )
        try:
            amount = Decimal(params.get("amount", "1"))
        except InvalidOperation:
            return _message(422, "invalid amount")
        if not amount.is_finite() or amount <= 0:
            return _message(422, "invalid amount")
        try:
            rates = rates_for(base, symbols, amount=amount, multiplier=behaviour.multiplier)
        except UnknownCurrency:
            return _message(404, "not found")
        day = behaviour.rates_date or datetime.now(UTC).date()
        return OrjsonResponse(
            {
                "amount": _as_json_number(amount) if amount != 1 else 1.0,
                "base": base,
                "date": day.isoformat(),
                "rates": {code: _as_json_number(rate) for code, rate in rates.items()},
            }
        )

    async def currencies(request: Request) -> Response:
        failure = await misbehave()
        if failure is not None:
            return failure
        return OrjsonResponse(dict(sorted(CURRENCY_NAMES.items())))

    async def health(request: Request) -> Response:
        return OrjsonResponse({"status": "ok"})

    async def show_control(request: Request) -> Response:
        return OrjsonResponse(behaviour.as_json())

    async def change_control(request: Request) -> Response:
        try:
            changes = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _message(400, "the body must be a JSON object")
        if not isinstance(changes, dict):
            return _message(400, "the body must be a JSON object")
        try:
            behaviour.update(changes)
        except ValueError as error:
            return _message(422, str(error))
        return OrjsonResponse(behaviour.as_json())

    async def reset_control(request: Request) -> Response:
        behaviour.reset()
        return OrjsonResponse(behaviour.as_json())

    routes = [
        Route("/latest", latest, methods=["GET"]),
        Route("/currencies", currencies, methods=["GET"]),
        Route("/health/live", health, methods=["GET"]),
        Route("/health/ready", health, methods=["GET"]),
    ]
    if control:
        routes += [
            Route("/_control", show_control, methods=["GET"]),
            Route("/_control", change_control, methods=["PUT"]),
            Route("/_control/reset", reset_control, methods=["POST"]),
        ]
    return Starlette(routes=routes)

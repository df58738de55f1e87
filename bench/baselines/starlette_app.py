"""The ceiling: bare Starlette on uvicorn (uvloop, httptools), nothing else.

``GET /me`` answers the same JSON as the users service's ``/api/v1/users/me``
(the bench passes the real body in ``BENCH_ME_BODY``); ``GET /hello`` answers a
tiny JSON object; ``GET /redis`` answers the same after one Redis round trip
(an ``INCR`` on ``BENCH_REDIS_URL``): the floor of any server that does one,
like the gateway's rate limit on a cached page.

    uvicorn bench.baselines.starlette_app:app --loop uvloop --http httptools
"""

from __future__ import annotations

import json
import os
from typing import Any

from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

SAMPLE_USER = (
    '{"id":"0b9a3c1e-6f7d-4c1e-9a52-3f0d8e2b7c41","email":"bench@example.com",'
    '"full_name":"Bench User","phone":null,"roles":["customer"],'
    '"created_at":"2026-01-01T00:00:00.000000Z"}'
)
USER: dict[str, Any] = json.loads(os.environ.get("BENCH_ME_BODY") or SAMPLE_USER)


async def me(request: Request) -> JSONResponse:
    return JSONResponse(USER)


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"message": "Hello, world!"})


_redis: Redis | None = None


async def one_redis_round_trip(request: Request) -> JSONResponse:
    global _redis
    if _redis is None:
        _redis = Redis.from_url(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"))
    await _redis.incr("bench:baseline:hits")
    return JSONResponse({"message": "Hello, world!"})


app = Starlette(
    routes=[Route("/me", me), Route("/hello", hello), Route("/redis", one_redis_round_trip)]
)

"""The floor of a proxied request: bare Starlette forwarding to one upstream.

``GET /{path}`` forwards to ``BENCH_UPSTREAM_URL`` + path through one pooled
``aiohttp`` session (the gateway's client, ADR 0006) and answers with the
upstream's status, content type and body; ``BENCH_PROXY_REDIS=1`` adds one Redis
round trip first (an ``INCR``, the floor of the gateway's rate limit). No
logging, metrics, request id, authentication or header filtering.
"""

from __future__ import annotations

import os

import aiohttp
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from yarl import URL

UPSTREAM = os.environ.get("BENCH_UPSTREAM_URL", "http://127.0.0.1:18001").rstrip("/")
WITH_REDIS = os.environ.get("BENCH_PROXY_REDIS") == "1"
_session: aiohttp.ClientSession | None = None
_redis: Redis | None = None


async def forward(request: Request) -> Response:
    global _session, _redis
    if WITH_REDIS:
        if _redis is None:
            _redis = Redis.from_url(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"))
        await _redis.incr("bench:proxy:hits")
    if _session is None:
        _session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=100),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
        )
    authorization = request.headers.get("authorization")
    headers = {"Authorization": authorization} if authorization else None
    async with _session.get(
        URL(UPSTREAM + request.url.path, encoded=True), headers=headers
    ) as upstream:
        body = await upstream.read()
        return Response(body, upstream.status, media_type=upstream.headers.get("content-type"))


app = Starlette(routes=[Route("/{path:path}", forward)])

"""A stand-in catalog service for the gateway's cache case.

It answers ``GET /api/v1/products`` with a fixed page of 20 products, the
shape of the catalogue contract's listing; the gateway caches it in Redis, so
under load this process is asked about once per cache lifetime.

    uvicorn bench.baselines.catalog_stub:app --port 18002
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def _product(n: int) -> dict[str, Any]:
    return {
        "id": f"00000000-0000-4000-8000-{n:012d}",
        "sku": f"SKU-{n:05d}",
        "name": f"Product {n}",
        "description": "A product of the benchmark catalogue.",
        "price": {"amount": f"{10 + n}.99", "currency": "EUR"},
        "category_id": "00000000-0000-4000-8000-000000000001",
        "stock": 100,
        "created_at": "2026-01-01T00:00:00Z",
    }


PAGE: dict[str, Any] = {"items": [_product(n) for n in range(1, 21)], "next_cursor": None}


async def products(request: Request) -> JSONResponse:
    return JSONResponse(PAGE)


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(
    routes=[
        Route("/api/v1/products", products),
        Route("/health/live", health),
        Route("/health/ready", health),
    ]
)

"""Every catalogue change commits its event to the outbox with the change, and each event's
payload is what its contract in ``contracts/events/`` describes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from jsonschema import Draft202012Validator

from conftest import Catalog

CONTRACTS = Path(__file__).resolve().parents[4] / "contracts" / "events"


def contract(routing_key: str) -> Draft202012Validator:
    name = routing_key.removeprefix("catalog.") + ".json"
    schema = json.loads((CONTRACTS / name).read_text())
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


async def outbox(db: asyncpg.Connection) -> list[tuple[str, dict[str, Any]]]:
    rows = await db.fetch("SELECT routing_key, payload FROM outbox ORDER BY occurred_at, id")
    return [(row["routing_key"], json.loads(row["payload"])) for row in rows]


async def test_every_change_records_one_event_that_matches_its_contract(
    catalog: Catalog, client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    audio = await catalog.category("Audio", slug="audio")
    video = await catalog.category("Video", slug="video")
    await client.patch(
        f"/api/v1/categories/{video['id']}",
        json={"parent_id": audio["id"]},
        headers=catalog.headers,
    )
    product = await catalog.product(
        video["id"], attributes={"colour": "black", "inches": 55, "smart": True}
    )
    await client.patch(
        f"/api/v1/products/{product['id']}",
        json={"description": "Bigger.", "image_urls": ["https://img.example.com/tv.jpg"]},
        headers=catalog.headers,
    )
    await client.put(
        f"/api/v1/products/{product['id']}/stock", json={"quantity": 9}, headers=catalog.headers
    )
    await client.delete(f"/api/v1/products/{product['id']}", headers=catalog.headers)
    await client.delete(f"/api/v1/categories/{video['id']}", headers=catalog.headers)

    events = await outbox(db)

    assert [(key, payload.get("change") or payload.get("changed")) for key, payload in events] == [
        ("catalog.category_changed.v1", "created"),
        ("catalog.category_changed.v1", "created"),
        ("catalog.category_changed.v1", "updated"),
        ("catalog.product_created.v1", None),
        ("catalog.product_updated.v1", ["description", "image_urls"]),
        ("catalog.product_updated.v1", ["stock"]),
        ("catalog.product_deleted.v1", None),
        ("catalog.category_changed.v1", "deleted"),
    ]
    for key, payload in events:
        errors = [error.message for error in contract(key).iter_errors(payload)]
        assert errors == [], (key, payload)
    moved = events[2][1]
    assert moved["category_id"] == video["id"]
    assert moved["parent_id"] == audio["id"]
    assert events[5][1]["stock"] == {"on_hand": 9, "reserved": 0, "available": 9}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/categories", {"name": "Audio", "slug": "audio"}),
        ("PATCH", "/api/v1/products/{product}", {"name": "x", "price": None}),
        ("PUT", "/api/v1/products/{product}/stock", {"quantity": 1}),
        ("DELETE", "/api/v1/categories/{category}", None),
    ],
)
async def test_a_refused_change_records_no_event(
    catalog: Catalog,
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    audio = await catalog.category("Audio", slug="audio")
    product = await catalog.product(audio["id"], stock=5)
    await db.execute("UPDATE products SET reserved = 5")
    before = await outbox(db)

    response = await client.request(
        method,
        path.format(product=product["id"], category=audio["id"]),
        json=body,
        headers=catalog.headers,
    )

    assert response.status_code in (409, 422), response.text
    assert await outbox(db) == before

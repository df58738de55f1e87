"""The category routes of the contract: the tree, creation, moves, deletion rules, RBAC."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx

from conftest import Catalog
from emporium_kit.problems import problem_type


async def _outbox(db: asyncpg.Connection, routing_key: str) -> list[dict[str, Any]]:
    import json

    rows = await db.fetch(
        "SELECT payload FROM outbox WHERE routing_key = $1 ORDER BY occurred_at", routing_key
    )
    return [json.loads(row["payload"]) for row in rows]


async def test_the_tree_nests_every_level_with_children_sorted_by_name(
    catalog: Catalog, client: httpx.AsyncClient
) -> None:
    audio = await catalog.category("Audio", slug="audio")
    speakers = await catalog.category("Speakers", slug="speakers", parent_id=audio["id"])
    headphones = await catalog.category("Headphones", slug="headphones", parent_id=audio["id"])
    wireless = await catalog.category("Wireless", slug="wireless", parent_id=headphones["id"])
    books = await catalog.category("Books", slug="books")

    response = await client.get("/api/v1/categories")

    assert response.status_code == 200
    assert response.json() == [
        {
            "id": audio["id"],
            "name": "Audio",
            "slug": "audio",
            "parent_id": None,
            "children": [
                {
                    "id": headphones["id"],
                    "name": "Headphones",
                    "slug": "headphones",
                    "parent_id": audio["id"],
                    "children": [
                        {
                            "id": wireless["id"],
                            "name": "Wireless",
                            "slug": "wireless",
                            "parent_id": headphones["id"],
                            "children": [],
                        }
                    ],
                },
                {
                    "id": speakers["id"],
                    "name": "Speakers",
                    "slug": "speakers",
                    "parent_id": audio["id"],
                    "children": [],
                },
            ],
        },
        {"id": books["id"], "name": "Books", "slug": "books", "parent_id": None, "children": []},
    ]


async def test_creating_a_category_answers_201_with_it_and_records_an_event(
    client: httpx.AsyncClient, staff: dict[str, str], db: asyncpg.Connection
) -> None:
    response = await client.post(
        "/api/v1/categories", json={"name": "Audio", "slug": "audio"}, headers=staff
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "Audio"
    assert body["slug"] == "audio"
    assert body["parent_id"] is None
    assert uuid.UUID(body["id"])
    events = await _outbox(db, "catalog.category_changed.v1")
    assert [(e["category_id"], e["change"], e["slug"]) for e in events] == [
        (body["id"], "created", "audio")
    ]


async def test_a_taken_slug_is_409(catalog: Catalog, client: httpx.AsyncClient) -> None:
    await catalog.category("Audio", slug="audio")

    response = await client.post(
        "/api/v1/categories", json={"name": "Other", "slug": "audio"}, headers=catalog.headers
    )

    assert response.status_code == 409
    assert response.json()["type"] == problem_type("slug-taken")


async def test_a_parent_that_does_not_exist_is_422(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    response = await client.post(
        "/api/v1/categories",
        json={"name": "Orphan", "slug": "orphan", "parent_id": str(uuid.uuid4())},
        headers=staff,
    )

    assert response.status_code == 422
    assert response.json()["type"] == problem_type("parent-category-not-found")


async def test_renaming_and_moving_a_category_takes_its_subtree_along(
    catalog: Catalog, client: httpx.AsyncClient
) -> None:
    audio = await catalog.category("Audio", slug="audio")
    video = await catalog.category("Video", slug="video")
    headphones = await catalog.category("Headphones", slug="headphones", parent_id=audio["id"])
    wireless = await catalog.category("Wireless", slug="wireless", parent_id=headphones["id"])
    product = await catalog.product(wireless["id"], name="Quiet headphones")

    moved = await client.patch(
        f"/api/v1/categories/{headphones['id']}",
        json={"parent_id": video["id"], "name": "Cans"},
        headers=catalog.headers,
    )

    assert moved.status_code == 200, moved.text
    assert moved.json()["parent_id"] == video["id"]
    assert moved.json()["name"] == "Cans"
    tree = (await client.get("/api/v1/categories")).json()
    by_slug = {node["slug"]: node for node in tree}
    assert by_slug["audio"]["children"] == []
    assert [c["slug"] for c in by_slug["video"]["children"]] == ["headphones"]
    assert [c["slug"] for c in by_slug["video"]["children"][0]["children"]] == ["wireless"]
    # The product of the moved grandchild is now in the new ancestor's subtree.
    under_video = (await catalog.listing(category="video")).json()["items"]
    assert [item["id"] for item in under_video] == [product["id"]]
    assert (await catalog.listing(category="audio")).json()["items"] == []


async def test_moving_to_the_root_with_a_null_parent(
    catalog: Catalog, client: httpx.AsyncClient
) -> None:
    audio = await catalog.category("Audio", slug="audio")
    child = await catalog.category("Headphones", slug="headphones", parent_id=audio["id"])

    response = await client.patch(
        f"/api/v1/categories/{child['id']}", json={"parent_id": None}, headers=catalog.headers
    )

    assert response.status_code == 200
    assert response.json()["parent_id"] is None
    assert sorted(n["slug"] for n in (await client.get("/api/v1/categories")).json()) == [
        "audio",
        "headphones",
    ]


async def test_moving_a_category_under_itself_or_a_descendant_is_409(
    catalog: Catalog, client: httpx.AsyncClient
) -> None:
    audio = await catalog.category("Audio", slug="audio")
    child = await catalog.category("Headphones", slug="headphones", parent_id=audio["id"])
    grandchild = await catalog.category("Wireless", slug="wireless", parent_id=child["id"])

    for target in (audio, child, grandchild):
        response = await client.patch(
            f"/api/v1/categories/{audio['id']}",
            json={"parent_id": target["id"]},
            headers=catalog.headers,
        )
        assert response.status_code == 409, target
        assert response.json()["type"] == problem_type("category-cycle")
    assert (await client.get("/api/v1/categories")).json()[0]["parent_id"] is None


async def test_patching_to_a_taken_slug_is_409_and_null_name_422(
    catalog: Catalog, client: httpx.AsyncClient
) -> None:
    await catalog.category("Audio", slug="audio")
    video = await catalog.category("Video", slug="video")

    taken = await client.patch(
        f"/api/v1/categories/{video['id']}", json={"slug": "audio"}, headers=catalog.headers
    )
    null = await client.patch(
        f"/api/v1/categories/{video['id']}", json={"name": None}, headers=catalog.headers
    )
    unknown = await client.patch(
        f"/api/v1/categories/{video['id']}", json={"colour": "red"}, headers=catalog.headers
    )

    assert taken.status_code == 409
    assert null.status_code == 422
    assert unknown.status_code == 422


async def test_deleting_a_category_with_children_or_live_products_is_409(
    catalog: Catalog, client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    audio = await catalog.category("Audio", slug="audio")
    child = await catalog.category("Headphones", slug="headphones", parent_id=audio["id"])
    product = await catalog.product(child["id"])

    with_child = await client.delete(f"/api/v1/categories/{audio['id']}", headers=catalog.headers)
    with_product = await client.delete(f"/api/v1/categories/{child['id']}", headers=catalog.headers)

    assert with_child.status_code == 409
    assert with_child.json()["type"] == problem_type("category-not-empty")
    assert with_product.status_code == 409

    # Once its only product is deleted (softly), the category may go; then its parent.
    deleted = await client.delete(f"/api/v1/products/{product['id']}", headers=catalog.headers)
    assert deleted.status_code == 204
    assert (
        await client.delete(f"/api/v1/categories/{child['id']}", headers=catalog.headers)
    ).status_code == 204
    assert (
        await client.delete(f"/api/v1/categories/{audio['id']}", headers=catalog.headers)
    ).status_code == 204
    assert (await client.get("/api/v1/categories")).json() == []
    changes = [e["change"] for e in await _outbox(db, "catalog.category_changed.v1")]
    assert changes == ["created", "created", "deleted", "deleted"]


async def test_an_absent_category_is_404_and_a_malformed_id_422(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    absent = await client.delete(f"/api/v1/categories/{uuid.uuid4()}", headers=staff)
    patched = await client.patch(
        f"/api/v1/categories/{uuid.uuid4()}", json={"name": "X"}, headers=staff
    )
    malformed = await client.delete("/api/v1/categories/not-a-uuid", headers=staff)

    assert absent.status_code == 404
    assert patched.status_code == 404
    assert malformed.status_code == 422


async def test_category_changes_need_catalog_write(
    catalog: Catalog, client: httpx.AsyncClient, customer: dict[str, str]
) -> None:
    audio = await catalog.category("Audio", slug="audio")
    body = {"name": "X", "slug": "x"}

    calls = [
        ("POST", "/api/v1/categories", body),
        ("PATCH", f"/api/v1/categories/{audio['id']}", {"name": "Y"}),
        ("DELETE", f"/api/v1/categories/{audio['id']}", None),
    ]
    for method, path, json in calls:
        anonymous = await client.request(method, path, json=json)
        as_customer = await client.request(method, path, json=json, headers=customer)
        assert anonymous.status_code == 401, (method, path)
        assert anonymous.headers["www-authenticate"] == "Bearer"
        assert as_customer.status_code == 403, (method, path)
        assert as_customer.headers["content-type"] == "application/problem+json"
    assert [n["name"] for n in (await client.get("/api/v1/categories")).json()] == ["Audio"]


async def test_two_concurrent_crossed_moves_never_build_a_cycle(
    catalog: Catalog, client: httpx.AsyncClient
) -> None:
    """A under B and B under A at once: the tree lock lets one through, the other is 409."""

    for _ in range(5):
        a = await catalog.category("A")
        b = await catalog.category("B")

        results = await asyncio.gather(
            client.patch(
                f"/api/v1/categories/{a['id']}",
                json={"parent_id": b["id"]},
                headers=catalog.headers,
            ),
            client.patch(
                f"/api/v1/categories/{b['id']}",
                json={"parent_id": a["id"]},
                headers=catalog.headers,
            ),
        )

        assert sorted(r.status_code for r in results) == [200, 409]
        tree = (await client.get("/api/v1/categories")).json()
        roots = {node["id"] for node in tree}
        assert len(roots & {a["id"], b["id"]}) == 1

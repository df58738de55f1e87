"""``GET /api/v1/products``: search, filters, sorts and keyset pages as the contract says."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from conftest import Catalog
from emporium_kit.problems import problem_type


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


@pytest.fixture
async def shop(catalog: Catalog) -> dict[str, Any]:
    """A small catalogue: audio (headphones under it) and books."""
    audio = await catalog.category("Audio", slug="audio")
    headphones = await catalog.category("Headphones", slug="headphones", parent_id=audio["id"])
    books = await catalog.category("Books", slug="books")
    made = {
        "cans": await catalog.product(
            headphones["id"],
            name="Wireless Headphones",
            description="Noise cancelling over-ear headphones with a long battery.",
            price={"amount": 15000, "currency": "USD"},
            attributes={"colour": "black", "size": 42, "wireless": True},
            stock=3,
        ),
        "buds": await catalog.product(
            headphones["id"],
            name="Earbuds",
            description="Small in-ear headphones.",
            price={"amount": 5000, "currency": "USD"},
            attributes={"colour": "white", "size": "42", "wireless": True},
            stock=0,
        ),
        "speaker": await catalog.product(
            audio["id"],
            name="Bookshelf Speaker",
            description="A speaker for the living room.",
            price={"amount": 9000, "currency": "USD"},
            attributes={"colour": "black", "wireless": False},
            stock=10,
        ),
        "novel": await catalog.product(
            books["id"],
            name="A Novel About Sound",
            description="Fiction.",
            price={"amount": 1500, "currency": "USD"},
            attributes={"pages": 320},
            stock=2,
        ),
    }
    return {"audio": audio, "headphones": headphones, "books": books, **made}


async def test_newest_first_by_default(catalog: Catalog, shop: dict[str, Any]) -> None:
    assert ids(await catalog.listing()) == [
        shop["novel"]["id"], shop["speaker"]["id"], shop["buds"]["id"], shop["cans"]["id"],
    ]  # fmt: skip


async def test_full_text_search_ranks_name_matches_above_description_matches(
    catalog: Catalog, shop: dict[str, Any]
) -> None:
    found = ids(await catalog.listing(q="headphones"))

    assert found[0] == shop["cans"]["id"]
    assert set(found) == {shop["cans"]["id"], shop["buds"]["id"]}


async def test_search_tolerates_a_typo(catalog: Catalog, shop: dict[str, Any]) -> None:
    assert ids(await catalog.listing(q="headphnes"))[0] == shop["cans"]["id"]
    assert ids(await catalog.listing(q="Wireles Headphone"))[0] == shop["cans"]["id"]
    assert shop["speaker"]["id"] in ids(await catalog.listing(q="speakr"))


async def test_the_words_of_a_new_or_renamed_product_correct_typos_at_once(
    catalog: Catalog, shop: dict[str, Any]
) -> None:
    lamp = await catalog.product(shop["books"]["id"], name="Zephyrion Reading Lamp")
    assert ids(await catalog.listing(q="zephyrin")) == [lamp["id"]]

    renamed = await catalog.http.patch(
        f"/api/v1/products/{shop['novel']['id']}",
        json={"name": "Quasimodo Chronicles"},
        headers=catalog.headers,
    )
    assert renamed.status_code == 200, renamed.text
    assert ids(await catalog.listing(q="quasimdo chronicles")) == [shop["novel"]["id"]]
    # Stock changes do not touch the vocabulary; the typo still finds the product.
    stocked = await catalog.http.put(
        f"/api/v1/products/{lamp['id']}/stock", json={"quantity": 7}, headers=catalog.headers
    )
    assert stocked.status_code == 200, stocked.text
    assert ids(await catalog.listing(q="zephyrin lamp")) == [lamp["id"]]


async def test_search_understands_web_search_syntax(catalog: Catalog, shop: dict[str, Any]) -> None:
    assert ids(await catalog.listing(q='headphones -"in-ear"')) == [shop["cans"]["id"]]
    assert set(ids(await catalog.listing(q="speaker or novel"))) == {
        shop["speaker"]["id"], shop["novel"]["id"],
    }  # fmt: skip


@pytest.mark.parametrize(
    "q",
    [
        "'; DROP TABLE products; --",
        '" OR 1=1 --',
        "a & b | !c <-> d:*",
        "((((",
        "ヘッドホン",
        "наушники 🎧",
        "%_\\",
        "the",
        "x" * 200,
    ],
)
async def test_any_search_text_is_safe(catalog: Catalog, shop: dict[str, Any], q: str) -> None:
    response = await catalog.listing(q=q)

    assert response.status_code == 200, response.text
    assert isinstance(response.json()["items"], list)
    assert len(ids(await catalog.listing())) == 4  # nothing was dropped


async def test_category_by_id_or_slug_includes_its_subtree(
    catalog: Catalog, shop: dict[str, Any]
) -> None:
    audio = {shop["cans"]["id"], shop["buds"]["id"], shop["speaker"]["id"]}
    assert set(ids(await catalog.listing(category="audio"))) == audio
    assert set(ids(await catalog.listing(category=shop["audio"]["id"]))) == audio
    assert set(ids(await catalog.listing(category="headphones"))) == {
        shop["cans"]["id"], shop["buds"]["id"],
    }  # fmt: skip
    assert ids(await catalog.listing(category="no-such-category")) == []


async def test_price_range_and_in_stock(catalog: Catalog, shop: dict[str, Any]) -> None:
    assert set(ids(await catalog.listing(min_price=5000, max_price=9000))) == {
        shop["buds"]["id"], shop["speaker"]["id"],
    }  # fmt: skip
    assert ids(await catalog.listing(min_price=15000)) == [shop["cans"]["id"]]
    in_stock = set(ids(await catalog.listing(in_stock="true")))
    assert shop["buds"]["id"] not in in_stock
    assert len(in_stock) == 3
    assert len(ids(await catalog.listing(in_stock="false"))) == 4


async def test_min_price_above_max_price_is_422(catalog: Catalog, shop: dict[str, Any]) -> None:
    response = await catalog.listing(min_price=100, max_price=99)

    assert response.status_code == 422
    assert response.json()["type"] == problem_type("invalid-price-range")


async def test_attribute_filters_match_exactly_and_combine(
    catalog: Catalog, client: httpx.AsyncClient, shop: dict[str, Any]
) -> None:
    async def attrs(*pairs: tuple[str, str], **params: Any) -> set[str]:
        query = [(f"attr.{name}", value) for name, value in pairs] + list(params.items())
        return set(ids(await client.get("/api/v1/products", params=query)))

    assert await attrs(("colour", "black")) == {shop["cans"]["id"], shop["speaker"]["id"]}
    assert await attrs(("colour", "black"), ("wireless", "true")) == {shop["cans"]["id"]}
    assert await attrs(("wireless", "false")) == {shop["speaker"]["id"]}
    # 42 the number and "42" the string both match attr.size=42.
    assert await attrs(("size", "42")) == {shop["cans"]["id"], shop["buds"]["id"]}
    assert await attrs(("pages", "320")) == {shop["novel"]["id"]}
    assert await attrs(("colour", "Black")) == set()
    assert await attrs(("colour", "black"), category="headphones", q="headphones") == {
        shop["cans"]["id"]
    }


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("price_asc", ["novel", "buds", "speaker", "cans"]),
        ("price_desc", ["cans", "speaker", "buds", "novel"]),
        ("name", ["novel", "speaker", "buds", "cans"]),
        ("newest", ["novel", "speaker", "buds", "cans"]),
        ("relevance", ["novel", "speaker", "buds", "cans"]),  # without q: newest
    ],
)
async def test_sorts(
    catalog: Catalog, shop: dict[str, Any], sort: str, expected: list[str]
) -> None:
    assert ids(await catalog.listing(sort=sort)) == [shop[name]["id"] for name in expected]


@pytest.mark.parametrize("sort", ["newest", "price_asc", "price_desc", "name", "relevance"])
async def test_walking_every_page_returns_each_match_once_in_order(
    catalog: Catalog, shop: dict[str, Any], sort: str
) -> None:
    for n in range(11):
        await catalog.product(
            shop["books"]["id"],
            name=f"Book {n % 4} of sound",
            price={"amount": 100 * (n % 3), "currency": "EUR"},
        )
    params: dict[str, Any] = {"sort": sort, "limit": 2}
    if sort == "relevance":
        params["q"] = "sound"

    walked = await catalog.walk(**params)
    whole = (await catalog.listing(**{**params, "limit": 100})).json()["items"]

    assert [item["id"] for item in walked] == [item["id"] for item in whole]
    assert len({item["id"] for item in walked}) == len(walked)
    assert len(walked) == (12 if sort == "relevance" else 15)


async def test_pages_stay_stable_while_products_are_inserted(
    catalog: Catalog, shop: dict[str, Any]
) -> None:
    """Each product that existed when the walk began is seen exactly once, whatever is
    inserted between pages, in every sort."""
    for n in range(30):
        await catalog.product(
            shop["books"]["id"],
            name=f"Item {n:02}",
            price={"amount": n * 7 % 50, "currency": "USD"},
        )
    for sort in ("newest", "price_asc", "price_desc", "name"):
        before = {item["id"] for item in await catalog.walk(sort=sort, limit=100)}
        seen: list[str] = []
        cursor = None
        inserted = 0
        while True:
            params: dict[str, Any] = {"sort": sort, "limit": 4}
            if cursor:
                params["cursor"] = cursor
            page = (await catalog.listing(**params)).json()
            seen.extend(item["id"] for item in page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
            # Others add products between our pages: cheap, dear, early and late names.
            for name, amount in (("AAA new", 0), ("zzz new", 10**6)):
                await catalog.product(
                    shop["books"]["id"], name=name, price={"amount": amount, "currency": "USD"}
                )
                inserted += 1
        existing = [pid for pid in seen if pid in before]
        assert sorted(existing) == sorted(before), sort
        assert len(existing) == len(set(existing)), sort
        assert inserted > 0


async def test_concurrent_inserts_do_not_disturb_a_walk(
    catalog: Catalog, shop: dict[str, Any]
) -> None:
    for n in range(20):
        await catalog.product(shop["books"]["id"], name=f"Walked {n}")
    before = {item["id"] for item in await catalog.walk(limit=100)}

    async def insert_many() -> None:
        for n in range(20):
            await catalog.product(shop["books"]["id"], name=f"Racing {n}")

    walked, _ = await asyncio.gather(catalog.walk(limit=3), insert_many())

    seen = [item["id"] for item in walked if item["id"] in before]
    assert sorted(seen) == sorted(before)


async def test_a_tampered_or_foreign_cursor_is_400(catalog: Catalog, shop: dict[str, Any]) -> None:
    cursor = (await catalog.listing(limit=1)).json()["next_cursor"]
    assert cursor is not None
    payload, signature = cursor.split(".")
    tampered = [
        payload[:-1] + ("A" if payload[-1] != "A" else "B") + "." + signature,
        payload + "." + signature[::-1],
        "garbage",
        "a.b",
        cursor + "x",
    ]
    for bad in tampered:
        response = await catalog.listing(cursor=bad)
        assert response.status_code == 400, bad
        assert response.json()["type"] == problem_type("invalid-cursor")
    # A cursor belongs to its sort.
    assert (await catalog.listing(cursor=cursor, sort="price_asc")).status_code == 400


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"limit": -5},
        {"limit": "ten"},
        {"q": "x" * 201},
        {"q": "x" * 10_000},
        {"q": "bad\x00byte"},
        {"q": ""},
        {"min_price": -1},
        {"max_price": 1.5},
        {"min_price": "cheap"},
        {"sort": "popular"},
        {"in_stock": "perhaps"},
        {"cursor": "c" * 2000},
        {"category": "x" * 101},
        {"attr.": "x"},
        {"attr.colour": "x" * 501},
        {"attr." + "k" * 65: "x"},
    ],
)
async def test_bad_listing_parameters_are_4xx_problems(
    catalog: Catalog, params: dict[str, Any]
) -> None:
    response = await catalog.listing(**params)

    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_too_many_attribute_filters_are_422(client: httpx.AsyncClient) -> None:
    params = [(f"attr.k{n}", "v") for n in range(21)]

    response = await client.get("/api/v1/products", params=params)

    assert response.status_code == 422


@pytest.mark.parametrize("value", ["1e3", "-0.5E-2", "9" * 400, "0x10", "1_000", "", "ヘ"])
async def test_any_attribute_filter_value_is_answered(
    client: httpx.AsyncClient, shop: dict[str, Any], value: str
) -> None:
    response = await client.get("/api/v1/products", params={"attr.size": value})

    assert response.status_code == 200, response.text
    assert response.json()["items"] == []


async def test_a_number_spelt_with_an_exponent_matches_the_number(
    catalog: Catalog, client: httpx.AsyncClient, shop: dict[str, Any]
) -> None:
    watt = await catalog.product(shop["audio"]["id"], attributes={"watts": 1000})

    response = await client.get("/api/v1/products", params={"attr.watts": "1e3"})

    assert ids(response) == [watt["id"]]

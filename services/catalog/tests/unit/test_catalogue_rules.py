"""Rules of the catalogue's domain and of its published documents, without a database."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import orjson
import pytest

from catalog.adapters.db.product_search import _attribute_values
from catalog.adapters.db.repositories import listed_product, product_of_read
from catalog.domain.categories import (
    Category,
    build_tree,
    ensure_can_delete,
    ensure_can_move,
    path_under,
)
from catalog.domain.errors import CategoryCycle, CategoryNotEmpty, InvalidPriceRange
from catalog.domain.listing import Sort, effective_sort, ensure_price_range
from catalog.domain.money import DisplayPrice, Money
from catalog.domain.products import Product, StockLevel
from catalog.entrypoints.http.schemas import (
    PricedProductOut,
    ProductOut,
    json_response,
    priced_product_document,
    product_document,
)

NOW = datetime(2026, 12, 2, 10, 0, 0, 123456, tzinfo=UTC)


def category(name: str, parent: Category | None = None) -> Category:
    category_id = uuid.uuid4()
    return Category(
        id=category_id,
        name=name,
        slug=name.lower(),
        parent_id=parent.id if parent else None,
        path=path_under(parent.path if parent else None, category_id),
        created_at=NOW,
        updated_at=NOW,
    )


def test_a_path_lists_the_ids_from_the_root_down() -> None:
    root = category("Root")
    child = category("Child", root)

    assert root.path == f"/{root.id.hex}/"
    assert child.path == f"/{root.id.hex}/{child.id.hex}/"


def test_a_category_moves_anywhere_but_under_itself_or_its_descendants() -> None:
    root = category("Root")
    child = category("Child", root)
    grandchild = category("Grandchild", child)
    other = category("Other")

    for target in (root, child, grandchild):
        with pytest.raises(CategoryCycle):
            ensure_can_move(root, target)
    ensure_can_move(child, other)
    ensure_can_move(grandchild, root)
    ensure_can_move(child, None)


def test_a_category_with_children_or_products_cannot_be_deleted() -> None:
    with pytest.raises(CategoryNotEmpty, match="sub-categories and products"):
        ensure_can_delete(has_children=True, has_products=True)
    with pytest.raises(CategoryNotEmpty, match="products"):
        ensure_can_delete(has_children=False, has_products=True)
    ensure_can_delete(has_children=False, has_products=False)


def test_the_tree_nests_children_sorted_by_name_from_any_order() -> None:
    root = category("Root")
    b, a = category("B", root), category("A", root)
    leaf = category("Leaf", a)

    tree = build_tree([leaf, b, root, a])

    assert [node.category.name for node in tree] == ["Root"]
    assert [node.category.name for node in tree[0].children] == ["A", "B"]
    assert [node.category.name for node in tree[0].children[0].children] == ["Leaf"]


def test_relevance_is_the_default_only_with_text() -> None:
    assert effective_sort(None, text="lamp") is Sort.RELEVANCE
    assert effective_sort(None, text=None) is Sort.NEWEST
    assert effective_sort(Sort.RELEVANCE, text=None) is Sort.NEWEST
    assert effective_sort(Sort.PRICE_ASC, text="lamp") is Sort.PRICE_ASC


def test_a_price_range_upside_down_is_refused() -> None:
    with pytest.raises(InvalidPriceRange):
        ensure_price_range(10, 9)
    ensure_price_range(10, 10)
    ensure_price_range(None, 3)


@pytest.mark.parametrize(
    ("raw", "values"),
    [
        ("red", ["red"]),
        ("42", ["42", 42]),
        ("-3", ["-3", -3]),
        ("4.5", ["4.5", 4.5]),
        ("1e3", ["1e3", 1000.0]),
        ("true", ["true", True]),
        ("false", ["false", False]),
        ("007", ["007"]),
        ("NaN", ["NaN"]),
        ("9" * 400, ["9" * 400]),
    ],
)
def test_an_attribute_filter_matches_the_json_types_its_text_spells(
    raw: str, values: list[object]
) -> None:
    assert _attribute_values(raw) == values


def product() -> Product:
    return Product(
        id=uuid.uuid4(),
        sku="HP-1",
        name="Headphones",
        description="Over-ear.",
        price=Money(12999, "EUR"),
        category_id=uuid.uuid4(),
        attributes={"colour": "black", "weight_g": 250, "rating": 4.5, "foldable": True},
        image_urls=("https://img.example.com/a.jpg",),
        stock=StockLevel(on_hand=7, reserved=2),
        created_at=NOW,
        updated_at=NOW,
    )


def test_the_product_document_is_what_the_published_schema_serialises() -> None:
    document = product_document(product())
    written = orjson.loads(json_response(document).body)

    assert ProductOut.model_validate(document).model_dump(mode="json") == written
    assert written["stock"] == {"on_hand": 7, "reserved": 2, "available": 5}
    assert written["created_at"] == "2026-12-02T10:00:00.123456Z"


def test_a_whole_second_is_written_as_the_schema_writes_it() -> None:
    whole = dataclasses.replace(product(), updated_at=NOW.replace(microsecond=0))
    document = product_document(whole)

    written = orjson.loads(json_response(document).body)
    assert written["updated_at"] == "2026-12-02T10:00:00Z"
    assert ProductOut.model_validate(document).model_dump(mode="json") == written


@pytest.mark.parametrize(
    "display",
    [
        DisplayPrice(price=Money(14000, "USD"), rate=Decimal("1.0770"), as_of=NOW),
        DisplayPrice(price=None, rate=None, as_of=None, error="no rate"),
    ],
)
def test_the_priced_document_is_what_the_published_schema_serialises(
    display: DisplayPrice,
) -> None:
    document = priced_product_document(product(), display)

    written = orjson.loads(json_response(document).body)
    assert PricedProductOut.model_validate(document).model_dump(mode="json") == written


def test_a_listed_product_is_written_as_the_product_document_is() -> None:
    """The listing's read model and a product read by id publish the same JSON."""
    record = {
        "id": uuid.uuid4(),
        "sku": "HP-1",
        "name": "Headphones",
        "description": "Over-ear.",
        "price_amount": 12999,
        "currency": "EUR",
        "category_id": None,
        "attributes": '{"colour": "black", "weight_g": 250, "rating": 4.5, "foldable": true}',
        "image_urls": ["https://img.example.com/a.jpg"],
        "on_hand": 7,
        "reserved": 2,
        "created_at": NOW,
        "updated_at": NOW.replace(microsecond=0),
        "deleted_at": None,
        "score": 0.5,
    }
    listed = listed_product(record)

    written = orjson.loads(json_response(listed.document).body)
    assert written == orjson.loads(json_response(product_document(product_of_read(record))).body)
    assert ProductOut.model_validate(written).model_dump(mode="json") == written
    assert (listed.id, listed.price_amount, listed.name, listed.score) == (
        record["id"],
        12999,
        "Headphones",
        0.5,
    )

"""Request and response bodies of the catalogue's routes.

Every request model forbids unknown fields (422) and every string is bounded and
free of control characters, so hostile input stops here. The published JSON
Schema of each field states the rules its validation applies, so a client, or a
fuzzer, that follows the document is not refused.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Final
from uuid import UUID

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    StrictFloat,
    StrictInt,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)
from starlette.responses import Response

from catalog.domain.categories import Category, CategoryNode
from catalog.domain.listing import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, MAX_QUERY_LENGTH, Sort
from catalog.domain.money import DisplayPrice, Money
from catalog.domain.products import (
    MAX_ATTRIBUTE_NAME_LENGTH,
    MAX_ATTRIBUTE_TEXT_LENGTH,
    MAX_ATTRIBUTES,
    MAX_IMAGE_URLS,
    MAX_STOCK,
    Product,
)
from emporium_kit.currencies import KNOWN_CURRENCIES, is_known_currency
from emporium_kit.fields import Line

CURRENCY_CODES: Final = tuple(sorted(KNOWN_CURRENCIES))
"""Every ISO 4217 code with a minor unit (prices are integers of it)."""
MAX_AMOUNT: Final = 2**53 - 1
"""Amounts are PostgreSQL bigints; this bound is exact in every JSON client (and in the
published schema, whose numbers are doubles to most readers)."""
MAX_ATTRIBUTE_NUMBER: Final = 2**53
"""Attribute numbers stay exact in every JSON client."""


def _known_currency(value: str) -> str:
    if not is_known_currency(value):
        raise ValueError("must be an ISO 4217 currency code, such as USD or EUR")
    return value


CurrencyCode = Annotated[
    str,
    AfterValidator(_known_currency),
    WithJsonSchema(
        {"type": "string", "enum": list(CURRENCY_CODES), "description": "ISO 4217 code."}
    ),
]


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


Timestamp = Annotated[
    datetime,
    PlainSerializer(_rfc3339, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


def _whole_number(value: object) -> object:
    """JSON's integers, as JSON Schema counts them: ``1999`` and ``1999.0``, never
    ``19.99``, ``"1999"`` or ``true``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a whole number")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be a whole number (minor units), not a fraction")
        return int(value)
    return value


_WHOLE_NUMBER = BeforeValidator(_whole_number)


# No control characters, no space at either end, at least one character. (No \s: its
# meaning differs between Python, Rust and JSON Schema's ECMA regular expressions.)
NAME_PATTERN: Final = r"^[^ \x00-\x1f\x7f](?:[^\x00-\x1f\x7f]*[^ \x00-\x1f\x7f])?$"
TEXT_PATTERN: Final = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
LINE_PATTERN: Final = r"^[^\x00-\x1f\x7f]*$"
SLUG_PATTERN: Final = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
SKU_PATTERN: Final = r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$"
HTTPS_URL_PATTERN: Final = (
    r"^https://[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"(?::[0-9]{1,5})?(?:[/?#][^ \x00-\x1f\x7f]*)?$"
)

ProductName = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NAME_PATTERN)]
CategoryName = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=NAME_PATTERN)]
Description = Annotated[str, StringConstraints(max_length=5000, pattern=TEXT_PATTERN)]
Slug = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=SLUG_PATTERN)]
Sku = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=SKU_PATTERN)]
ImageUrl = Annotated[
    str, StringConstraints(min_length=9, max_length=2048, pattern=HTTPS_URL_PATTERN)
]
# The length is in the pattern too: JSON Schema publishes a key's pattern, not its length.
ATTRIBUTE_NAME_PATTERN: Final = rf"^[^\x00-\x1f\x7f]{{1,{MAX_ATTRIBUTE_NAME_LENGTH}}}$"
AttributeName = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=MAX_ATTRIBUTE_NAME_LENGTH, pattern=ATTRIBUTE_NAME_PATTERN
    ),
]
AttributeText = Annotated[
    str, StringConstraints(max_length=MAX_ATTRIBUTE_TEXT_LENGTH, pattern=LINE_PATTERN)
]
AttributeInteger = Annotated[StrictInt, Field(ge=-MAX_ATTRIBUTE_NUMBER, le=MAX_ATTRIBUTE_NUMBER)]
AttributeFloat = Annotated[
    StrictFloat,
    Field(ge=-MAX_ATTRIBUTE_NUMBER, le=MAX_ATTRIBUTE_NUMBER, allow_inf_nan=False),
]
AttributeValue = StrictBool | AttributeInteger | AttributeFloat | AttributeText
Attributes = Annotated[
    dict[AttributeName, AttributeValue],
    Field(
        max_length=MAX_ATTRIBUTES,
        description=f"A flat object of at most {MAX_ATTRIBUTES} attributes; each value a "
        "string, number or boolean (no nested objects or arrays).",
        # Keys are constrained by patternProperties only when no others are allowed.
        json_schema_extra={"additionalProperties": False},
    ),
]
ImageUrls = Annotated[
    list[ImageUrl], Field(max_length=MAX_IMAGE_URLS, description="https URLs, at most 10.")
]
Stock = Annotated[int, Field(ge=0, le=MAX_STOCK), _WHOLE_NUMBER]


def _not_nullable(schema: dict[str, Any]) -> None:
    """Publish an optional field that may be omitted but not sent as null."""
    branches = schema.pop("anyOf")
    schema.pop("default", None)
    schema.update(next(branch for branch in branches if branch.get("type") != "null"))


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=8192)


class Price(Strict):
    amount: Annotated[int, Field(ge=0, le=MAX_AMOUNT, description="Minor units."), _WHOLE_NUMBER]
    currency: CurrencyCode

    def to_money(self) -> Money:
        return Money(self.amount, self.currency)

    @classmethod
    def of(cls, money: Money) -> Price:
        return cls(amount=money.amount, currency=money.currency)


# --- categories ---


class CategoryCreate(Strict):
    name: CategoryName
    slug: Slug = Field(description="Unique among categories.")
    parent_id: UUID | None = Field(default=None, description="Absent or null: a root.")


class CategoryUpdate(Strict):
    """Only the fields sent change; ``parent_id: null`` makes the category a root."""

    name: Annotated[CategoryName | None, Field(json_schema_extra=_not_nullable)] = None
    slug: Annotated[Slug | None, Field(json_schema_extra=_not_nullable)] = None
    parent_id: UUID | None = None

    @field_validator("name", "slug")
    @classmethod
    def _cannot_be_cleared(cls, value: str | None) -> str | None:
        if value is None:
            raise ValueError("cannot be null")
        return value


class CategoryOut(BaseModel):
    id: UUID
    name: str
    slug: str
    parent_id: UUID | None
    created_at: Timestamp
    updated_at: Timestamp

    @classmethod
    def of(cls, category: Category) -> CategoryOut:
        return cls(
            id=category.id,
            name=category.name,
            slug=category.slug,
            parent_id=category.parent_id,
            created_at=category.created_at,
            updated_at=category.updated_at,
        )


class CategoryTreeOut(BaseModel):
    id: UUID
    name: str
    slug: str
    parent_id: UUID | None
    children: list[CategoryTreeOut]

    @classmethod
    def of(cls, node: CategoryNode) -> CategoryTreeOut:
        category = node.category
        return cls(
            id=category.id,
            name=category.name,
            slug=category.slug,
            parent_id=category.parent_id,
            children=[cls.of(child) for child in node.children],
        )


# --- products ---


class ProductCreate(Strict):
    sku: Sku = Field(description="Unique among live products.")
    name: ProductName
    description: Description = ""
    price: Price
    category_id: UUID
    attributes: Attributes = Field(default_factory=dict)
    image_urls: ImageUrls = Field(default_factory=list)
    stock: Stock = Field(default=0, description="Initial stock on hand.")


class ProductUpdate(Strict):
    """Only the fields sent change; ``sku`` and ``stock`` are not changeable here
    (stock has ``PUT /products/{id}/stock``), and none may be null."""

    name: Annotated[ProductName | None, Field(json_schema_extra=_not_nullable)] = None
    description: Annotated[Description | None, Field(json_schema_extra=_not_nullable)] = None
    price: Annotated[Price | None, Field(json_schema_extra=_not_nullable)] = None
    category_id: Annotated[UUID | None, Field(json_schema_extra=_not_nullable)] = None
    attributes: Annotated[Attributes | None, Field(json_schema_extra=_not_nullable)] = None
    image_urls: Annotated[ImageUrls | None, Field(json_schema_extra=_not_nullable)] = None

    @field_validator("*")
    @classmethod
    def _cannot_be_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("cannot be null")
        return value

    def changes(self) -> dict[str, Any]:
        """The fields sent, as the use case takes them."""
        changes: dict[str, Any] = {}
        for name in self.model_fields_set:
            value = getattr(self, name)
            changes[name] = value.to_money() if isinstance(value, Price) else value
        return changes


class StockUpdate(Strict):
    quantity: Stock = Field(description="Stock on hand; at least what is reserved.")


class StockOut(BaseModel):
    on_hand: int
    reserved: int
    available: int


class ProductOut(BaseModel):
    id: UUID
    sku: str
    name: str
    description: str
    price: Price
    category_id: UUID | None
    attributes: dict[str, bool | int | float | str]
    image_urls: list[str]
    stock: StockOut
    created_at: Timestamp
    updated_at: Timestamp


def _rate(value: Decimal | None) -> str | None:
    # A decimal string, as exact as the rate used ("0.9208", never 0.92080000001).
    return format(value, "f") if value is not None else None


class PricedProductOut(ProductOut):
    """A product read with ``?currency=``: its price shown in that currency too."""

    display_price: Price | None = Field(
        description="The price converted at the current rate; null when no rate is known."
    )
    fx_rate: str | None = Field(
        description="Units of the display currency per unit of the product's currency, as a "
        'decimal string (e.g. "0.9208"); display_price is the price times this rate, '
        "rounded half to even to the display currency's minor unit.",
        examples=["0.9208"],
    )
    fx_as_of: Timestamp | None = Field(
        description="When the rates used were fetched from the provider (older while the "
        "provider is down: the last known rates are served)."
    )
    fx_error: str | None = Field(description="Why there is no display price; null otherwise.")


class ProductPage(BaseModel):
    items: list[ProductOut]
    next_cursor: str | None


class ListingParameters(BaseModel):
    """The listing's query parameters, all but ``attr.<name>`` (any number of names,
    read from the query itself). The route and its fast read (``fast_reads``)
    validate a query with this one model, so both accept and refuse the same."""

    model_config = ConfigDict(frozen=True)

    q: Annotated[Line | None, Field(min_length=1, max_length=MAX_QUERY_LENGTH)] = None
    category: Annotated[
        Line | None, Field(min_length=1, max_length=100, description="A category id or slug.")
    ] = None
    min_price: Annotated[int | None, Field(ge=0, le=MAX_AMOUNT)] = None
    max_price: Annotated[int | None, Field(ge=0, le=MAX_AMOUNT)] = None
    in_stock: Annotated[
        bool | None, Field(description="true: only products with stock available.")
    ] = None
    sort: Sort | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE
    cursor: Annotated[str | None, Field(max_length=1024)] = None


LISTING_PARAMETERS: Final = tuple(ListingParameters.model_fields)
"""The names of :class:`ListingParameters`, as a query spells them."""


# --- the hot read path: documents written straight to JSON ---
#
# Product reads and listings answer the documents below, serialised once by orjson,
# instead of building ProductOut models that FastAPI would validate a second time
# against the response model (the models above stay the published schema; the API
# tests hold both to the same output).


def _money(money: Money) -> dict[str, Any]:
    return {"amount": money.amount, "currency": money.currency}


def product_document(product: Product) -> dict[str, Any]:
    """The product exactly as :class:`ProductOut` serialises it."""
    return {
        "id": str(product.id),
        "sku": product.sku,
        "name": product.name,
        "description": product.description,
        "price": _money(product.price),
        "category_id": str(product.category_id) if product.category_id else None,
        "attributes": product.attributes,
        "image_urls": list(product.image_urls),
        "stock": {
            "on_hand": product.stock.on_hand,
            "reserved": product.stock.reserved,
            "available": product.stock.available,
        },
        # datetimes as they are: json_response writes them in RFC 3339, UTC as Z.
        "created_at": product.created_at,
        "updated_at": product.updated_at,
    }


def priced_product_document(product: Product, display: DisplayPrice) -> dict[str, Any]:
    """The product exactly as :class:`PricedProductOut` serialises it."""
    return {
        **product_document(product),
        "display_price": _money(display.price) if display.price is not None else None,
        "fx_rate": _rate(display.rate),
        "fx_as_of": _rfc3339(display.as_of) if display.as_of is not None else None,
        "fx_error": display.error,
    }


def json_response(document: object, status_code: int = 200) -> Response:
    """``document`` as JSON; its datetimes in RFC 3339 as :data:`Timestamp` writes them
    (UTC with ``Z``; every datetime here comes from PostgreSQL's ``timestamptz``, UTC)."""
    return Response(
        orjson.dumps(document, option=orjson.OPT_UTC_Z),
        status_code=status_code,
        media_type="application/json",
    )


# --- the internal batch read (orders) ---


class BatchRequest(Strict):
    ids: list[UUID] = Field(min_length=1, max_length=100)


class BatchProduct(BaseModel):
    id: UUID
    sku: str
    name: str
    price: Price
    available: int
    orderable: bool = Field(description="False for a deleted product.")
    deleted: bool

    @classmethod
    def of(cls, product: Product) -> BatchProduct:
        return cls(
            id=product.id,
            sku=product.sku,
            name=product.name,
            price=Price.of(product.price),
            available=product.stock.available,
            orderable=product.can_be_ordered,
            deleted=product.is_deleted,
        )


class BatchResponse(BaseModel):
    items: list[BatchProduct] = Field(
        description="Every requested product that exists, deleted ones included, in the "
        "order asked."
    )
    missing: list[UUID] = Field(description="The requested ids no product ever had.")

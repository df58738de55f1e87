"""Load a realistic, deterministic demo catalogue into the catalogue's database with COPY.

    python scripts/seed_catalog.py                        # 100,000 products (make seed)
    python scripts/seed_catalog.py --products 1000000     # SEED_PRODUCTS=1000000 make seed
    python scripts/seed_catalog.py --database-url postgresql+asyncpg://.../db --products 500

What it loads: a 3-level category tree (10 top-level categories, 8 children
each, 6 grandchildren each: 570 categories) and ``--products`` products in the
480 leaves, with names and descriptions drawn from a product vocabulary (so
``q=headphones`` and the typo ``q=headphnes`` find something), brands,
colours, sizes, materials, booleans and numbers in ``attributes``, prices in
USD minor units and stock on hand (about 8 % of the products out of stock,
nothing reserved).

Deterministic: category ids are uuid5 of their slug; product ``n`` of seed
``s`` has the id uuid5 of ``seed:<s>:product:<n>``, the SKU ``SD<s>-<n:07d>``,
and its fields are drawn from a random generator seeded with ``s`` and the
block of 5,000 products ``n`` falls in. So the same ``--seed`` always yields
the same rows whatever ``--products`` is.

Idempotent: categories are inserted with ``ON CONFLICT DO NOTHING`` (a category
someone already created with one of the slugs is reused, not duplicated), and
the products of each block that are already present (by id) are skipped, so a
second run with the same arguments changes nothing, and a larger
``--products`` adds only the missing products. A row seeded once and edited
since is left as it is.

Fast: products go in with binary COPY (asyncpg's ``copy_records_to_table``),
in one transaction. When a load adds many rows (at least
``--rebuild-threshold``, and more than the table holds), the non-unique
indexes of ``products`` are dropped first and recreated from their own
definitions (``pg_indexes``) after the load, inside the same transaction, so a
failure leaves the schema as it was; the primary key and the live-SKU unique
index stay in place throughout. Then ``VACUUM (ANALYZE)``. While a large load runs, the
transaction holds ``products`` exclusively: this is a development tool, not
for a live shop.

It writes into migration 0001's schema directly, not through the HTTP API: it
is the catalogue's own tool on the catalogue's own database. It writes no
outbox rows, so seeded products are never announced as
``catalog.product_created.v1`` events: nothing downstream hears of them, and a
gateway's cached catalogue pages only change once their TTL
(``GATEWAY_CACHE_TTL_SECONDS``) runs out.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import re
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
from sqlalchemy.engine import make_url

NAMESPACE = uuid.UUID("5b0f7a3e-1c2d-4e8f-9a6b-7c3d2e1f0a9b")
BLOCK = 5_000  # products per random generator; fixed, so rows do not depend on --products
DEFAULT_PRODUCTS = 100_000
DEFAULT_SEED = 1
DEFAULT_REBUILD_THRESHOLD = 50_000
CURRENCY = "USD"
OUT_OF_STOCK_SHARE = 0.08
FIRST_CREATED_AT = datetime(2024, 1, 1, tzinfo=UTC)
IMAGE_HOST = "https://images.emporium.example"
PRODUCT_COLUMNS = (
    "id", "sku", "name", "description", "price_amount", "currency", "category_id",
    "attributes", "image_urls", "on_hand", "reserved", "created_at", "updated_at",
)  # fmt: skip

# --- the vocabulary ----------------------------------------------------------

COLOURS = (
    "black", "white", "grey", "silver", "red", "blue", "navy", "green", "olive", "yellow",
    "orange", "pink", "purple", "brown", "beige", "gold",
)  # fmt: skip
LETTER_SIZES = ("XS", "S", "M", "L", "XL", "XXL")
GENERIC_ADJECTIVES = (
    "durable", "lightweight", "elegant", "classic", "modern", "compact", "premium",
    "essential", "versatile", "sturdy", "stylish", "everyday",
)  # fmt: skip
GENERIC_SENTENCES = (
    "Backed by a {warranty}-year warranty.",
    "Ships in recyclable packaging.",
    "Rated {rating} out of 5 by our customers.",
    "Easy to clean and built to last.",
    "A favourite gift idea this season.",
    "Designed in Europe, tested for everyday use.",
)


@dataclass(frozen=True, slots=True)
class Child:
    """A second-level category: its name, the nouns its products are called by, a price."""

    name: str
    nouns: tuple[str, ...]
    base_price: float  # typical price in dollars


@dataclass(frozen=True, slots=True)
class Department:
    """A top-level category with the words and attributes of its products."""

    name: str
    segments: tuple[str, ...]  # the six grandchildren of every child
    segment_first: bool  # "Women's Jackets" (True) or "Fiction Bestsellers" (False)
    children: tuple[Child, ...]
    brands: tuple[str, ...]
    adjectives: tuple[str, ...]
    materials: tuple[str, ...]
    features: tuple[str, ...]
    uses: tuple[str, ...]
    sizes: tuple[str, ...] = ()


def _c(name: str, nouns: str, base_price: float) -> Child:
    return Child(name, tuple(noun.strip() for noun in nouns.split(",")), base_price)


# fmt: off
DEPARTMENTS: tuple[Department, ...] = (
    Department(
        "Electronics",
        ("Premium", "Everyday", "Budget", "Professional", "Refurbished", "Compact"),
        True,
        (
            _c("Headphones", "headphones, earbuds, headset", 89),
            _c("Speakers", "speaker, soundbar, subwoofer", 129),
            _c("Cameras", "camera, camcorder, action camera", 449),
            _c("Laptops", "laptop, notebook computer, ultrabook", 999),
            _c("Smartphones", "smartphone, phone", 599),
            _c("Tablets", "tablet, e-reader", 329),
            _c("Smartwatches", "smartwatch, fitness tracker", 199),
            _c("Televisions", "television, monitor, projector", 549),
        ),
        ("Sonora", "Voltix", "Lumina", "Arcwave", "Kestrel", "Nordtek", "Pixelon", "Aurex"),
        ("wireless", "noise-cancelling", "portable", "bluetooth", "waterproof", "smart",
         "ultra-slim", "high-resolution", "rechargeable", "digital"),
        ("aluminium", "plastic", "glass", "carbon fibre", "silicone"),
        ("The battery lasts up to {hours} hours on a single charge.",
         "Fast USB-C charging gets you going in minutes.",
         "Crystal-clear sound with deep bass.",
         "Records sharp 4K video and bright photos.",
         "Pairs instantly over Bluetooth 5.3.",
         "A vivid OLED display that stays readable in sunlight."),
        ("commuting", "travel", "the home office", "gaming", "streaming films", "video calls"),
    ),
    Department(
        "Home & Kitchen",
        ("Modern", "Classic", "Rustic", "Minimalist", "Scandinavian", "Outdoor"),
        True,
        (
            _c("Cookware", "frying pan, saucepan, wok, casserole dish", 59),
            _c("Coffee & Tea", "coffee maker, espresso machine, kettle, teapot", 79),
            _c("Tableware", "dinner plate set, bowl, mug, wine glass set", 29),
            _c("Bedding", "duvet, pillow, bed sheet set, blanket", 69),
            _c("Lighting", "table lamp, ceiling light, lantern, floor lamp", 89),
            _c("Furniture", "armchair, dining table, bookshelf, sofa", 399),
            _c("Storage", "storage box, laundry basket, shelf organiser", 25),
            _c("Appliances", "blender, toaster, vacuum cleaner, air fryer", 129),
        ),
        ("Hearthly", "Casa Verde", "Norrland", "Ember & Oak", "Kitchara", "Pallas", "Domo",
         "Wildwood"),
        ("non-stick", "handmade", "stackable", "energy-saving", "ceramic", "cast-iron",
         "dishwasher-safe", "cosy", "foldable", "stainless"),
        ("stainless steel", "cast iron", "oak", "bamboo", "ceramic", "linen", "cotton", "glass"),
        ("Heats evenly and cleans up in seconds.",
         "Fits neatly in small kitchens and flats.",
         "Dishwasher safe and oven safe up to 220 degrees.",
         "Soft to the touch and breathable all year round.",
         "Assembles in ten minutes without tools.",
         "Uses up to {saving} percent less energy than older models."),
        ("family dinners", "small apartments", "weekend brunches", "entertaining guests",
         "a calm bedroom", "the holiday cottage"),
    ),
    Department(
        "Fashion",
        ("Women's", "Men's", "Kids'", "Unisex", "Sport", "Vintage"),
        True,
        (
            _c("Jackets", "jacket, parka, raincoat, bomber jacket", 119),
            _c("Dresses", "dress, skirt, jumpsuit", 69),
            _c("Shoes", "sneakers, boots, sandals, loafers", 89),
            _c("Jeans", "jeans, chinos, trousers", 59),
            _c("T-Shirts", "t-shirt, polo shirt, tank top", 25),
            _c("Sweaters", "sweater, hoodie, cardigan", 55),
            _c("Hats", "hat, beanie, baseball cap", 22),
            _c("Bags", "backpack, handbag, tote bag, wallet", 49),
        ),
        ("Maison Lark", "Northbound", "Velour", "Tidewell", "Urbanist", "Fennick", "Arlo & Rue",
         "Kinfolk"),
        ("slim-fit", "oversized", "organic", "recycled", "waterproof", "quilted", "knitted",
         "linen", "breathable", "relaxed"),
        ("cotton", "wool", "leather", "denim", "polyester", "cashmere", "linen", "nylon"),
        ("Cut from soft organic cotton that keeps its shape wash after wash.",
         "Water-repellent finish for rainy days.",
         "Hidden pockets keep your phone and keys safe.",
         "Made in a fair-trade certified factory.",
         "Machine washable at 30 degrees.",
         "Lined for warmth without the bulk."),
        ("the office", "weekends in the city", "festivals", "autumn walks", "date nights",
         "school days"),
        LETTER_SIZES,
    ),
    Department(
        "Sports & Outdoors",
        ("Beginner", "Advanced", "Professional", "Junior", "Lightweight", "All-Weather"),
        True,
        (
            _c("Camping", "tent, sleeping bag, camping stove, camping chair", 149),
            _c("Cycling", "bicycle, bike helmet, bike light, cycling jersey", 249),
            _c("Running", "running shoes, running vest, running belt", 99),
            _c("Fitness", "dumbbell set, kettlebell, yoga mat, resistance band", 45),
            _c("Swimming", "swimsuit, swimming goggles, swim cap", 29),
            _c("Hiking", "hiking boots, trekking poles, rucksack", 119),
            _c("Team Sports", "football, basketball, volleyball, shin guards", 35),
            _c("Winter Sports", "ski goggles, snowboard, ski jacket, ski gloves", 179),
        ),
        ("Summitra", "Trailfox", "Aeroline", "Boreal", "Kinetik", "Ridgeback", "Velocity",
         "Glacier Peak"),
        ("ultralight", "waterproof", "breathable", "reflective", "insulated", "ergonomic",
         "shock-absorbing", "quick-dry", "windproof", "grippy"),
        ("nylon", "polyester", "rubber", "aluminium", "carbon fibre", "neoprene", "merino wool"),
        ("Packs down small and weighs only {weight} grams.",
         "Reflective details keep you visible after dark.",
         "Tested on alpine trails and city marathons.",
         "Sweat-wicking fabric dries in minutes.",
         "Cushioned sole absorbs every impact.",
         "Withstands rain, wind and temperatures below zero."),
        ("trail running", "weekend camping trips", "the gym", "mountain hikes",
         "daily commuting by bike", "team training"),
        LETTER_SIZES,
    ),
    Department(
        "Beauty & Health",
        ("Natural", "Sensitive", "Luxury", "Everyday", "Travel Size", "Organic"),
        True,
        (
            _c("Skincare", "moisturiser, face serum, face cleanser, sunscreen", 29),
            _c("Hair Care", "shampoo, conditioner, hair dryer, hair straightener", 25),
            _c("Makeup", "lipstick, mascara, foundation, eyeshadow palette", 19),
            _c("Fragrances", "perfume, eau de toilette, body mist", 69),
            _c("Oral Care", "electric toothbrush, toothpaste, water flosser", 39),
            _c("Shaving", "razor, shaving cream, beard trimmer", 35),
            _c("Vitamins", "multivitamin, vitamin D supplement, omega-3 capsules", 19),
            _c("Wellness", "massage gun, essential oil diffuser, heating pad", 59),
        ),
        ("Lumière", "Verdana Botanics", "Pure Ritual", "Aqualis", "Sora Skin", "Halcyon",
         "Botanika", "Oriel"),
        ("hydrating", "fragrance-free", "vegan", "gentle", "nourishing", "long-lasting",
         "dermatologist-tested", "soothing", "refreshing", "cruelty-free"),
        ("aloe vera", "shea butter", "argan oil", "glass", "bamboo", "stainless steel"),
        ("Enriched with hyaluronic acid and vitamin E.",
         "Free from parabens, sulphates and silicones.",
         "Suitable for sensitive skin.",
         "A light scent of citrus and cedarwood.",
         "Clinically shown to work within {days} days.",
         "Recyclable glass bottle with a refill pouch."),
        ("a morning routine", "sensitive skin", "travel", "a relaxing evening",
         "the gym bag", "everyday care"),
    ),
    Department(
        "Toys & Games",
        ("Toddler", "Preschool", "Kids", "Teen", "Family", "Collector"),
        True,
        (
            _c("Building Sets", "building blocks, construction set, marble run", 49),
            _c("Board Games", "board game, card game, jigsaw puzzle", 29),
            _c("Dolls", "doll, dollhouse, action figure", 35),
            _c("Outdoor Toys", "kite, water pistol, kick scooter, trampoline", 45),
            _c("Educational Toys", "science kit, globe, microscope, coding robot", 55),
            _c("Plush Toys", "teddy bear, plush toy, puppet", 19),
            _c("Remote Control", "RC car, drone, RC helicopter, RC boat", 89),
            _c("Video Games", "game controller, gaming console, video game", 59),
        ),
        ("Playfield", "Tinker & Co", "Wonderbox", "Brickly", "Jolly Otter", "Quest Forge",
         "Little Atlas", "Zoomies"),
        ("colourful", "educational", "interactive", "battery-powered", "wooden", "magnetic",
         "glow-in-the-dark", "collectible", "cooperative", "creative"),
        ("wood", "plastic", "plush fabric", "cardboard", "metal", "recycled plastic"),
        ("Contains {pieces} pieces that fit together in endless ways.",
         "Encourages creativity, logic and teamwork.",
         "Safety tested to European toy standards.",
         "Rechargeable battery with about an hour of play.",
         "Quick to learn, hard to master.",
         "Comes with an illustrated instruction booklet."),
        ("rainy afternoons", "family game night", "birthday parties", "the garden",
         "long car journeys", "the classroom"),
    ),
    Department(
        "Books & Media",
        ("Bestsellers", "New Releases", "Classics", "Special Editions", "Pre-Owned", "Box Sets"),
        False,
        (
            _c("Fiction", "novel, paperback novel, thriller, romance novel", 16),
            _c("Non-Fiction", "biography, history book, science book, memoir", 22),
            _c("Cookbooks", "cookbook, baking book, recipe collection", 28),
            _c("Children's Books", "picture book, bedtime story book, activity book", 12),
            _c("Comics", "comic book, graphic novel, manga volume", 15),
            _c("Music", "vinyl record, cd album, songbook", 24),
            _c("Movies", "Blu-ray, DVD box set, 4K film collection", 19),
            _c("Magazines", "magazine subscription, photo annual, travel guide", 9),
        ),
        ("Harbour Press", "Quill & Ink", "Meridian Books", "Northlight", "Paper Lantern",
         "Vinyl Vault", "Silver Screen", "Atlas House"),
        ("illustrated", "award-winning", "gripping", "definitive", "hardcover", "remastered",
         "collector's", "unabridged", "heartwarming", "bestselling"),
        ("paper", "hardcover", "vinyl", "recycled paper", "cardboard"),
        ("A gripping story that readers could not put down.",
         "Includes {pages} pages of photographs and illustrations.",
         "Remastered from the original recordings.",
         "With a new foreword by the author.",
         "Shortlisted for a national book award.",
         "Printed on sustainably sourced paper."),
        ("a long weekend", "the commute", "a cosy evening", "young readers", "collectors",
         "the holidays"),
    ),
    Department(
        "Garden & DIY",
        ("Cordless", "Heavy-Duty", "Compact", "Professional", "Eco", "Starter"),
        True,
        (
            _c("Power Tools", "drill, circular saw, angle grinder, jigsaw", 129),
            _c("Hand Tools", "hammer, screwdriver set, wrench set, pliers", 29),
            _c("Garden Tools", "spade, pruning shears, rake, garden hose", 35),
            _c("Plants & Seeds", "herb seed kit, planter, flower pot, raised bed", 25),
            _c("Outdoor Furniture", "garden chair, parasol, hammock, patio table", 179),
            _c("Barbecue", "barbecue grill, charcoal grill, pizza oven, smoker", 249),
            _c("Paint & Decorating", "wall paint, paint brush set, paint roller, wallpaper", 32),
            _c("Lawn Care", "lawn mower, leaf blower, grass trimmer, lawn sprinkler", 199),
        ),
        ("Ironclad", "Greenthumb", "Torqmaster", "Fieldcraft", "Brightwork", "Oakridge",
         "Voltforge", "Meadowlark"),
        ("cordless", "heavy-duty", "rust-resistant", "ergonomic", "brushless", "foldable",
         "weatherproof", "adjustable", "powerful", "quiet"),
        ("steel", "aluminium", "teak", "acacia wood", "fibreglass", "terracotta", "rattan"),
        ("A brushless {power} watt motor for hours of work.",
         "Two batteries and a fast charger in the box.",
         "Weatherproof finish for year-round use outdoors.",
         "Soft-grip handles reduce strain on your hands.",
         "Folds flat for storage in the shed.",
         "Quiet enough for early mornings."),
        ("weekend projects", "small gardens", "renovations", "summer evenings outdoors",
         "the allotment", "professional builders"),
    ),
    Department(
        "Automotive",
        ("Universal", "Premium", "Budget", "Performance", "Off-Road", "Classic"),
        True,
        (
            _c("Car Care", "car wax, pressure washer, microfibre cloth, car shampoo", 25),
            _c("Car Electronics", "dash cam, car charger, GPS navigator, car stereo", 89),
            _c("Tyres & Wheels", "tyre, alloy wheel, wheel cover", 139),
            _c("Car Interior", "seat cover, floor mat, steering wheel cover, phone holder", 29),
            _c("Garage Equipment", "jump starter, tyre inflator, car jack, battery charger", 69),
            _c("Motorcycle Gear", "motorcycle helmet, riding gloves, motorcycle jacket", 149),
            _c("Car Lighting", "headlight bulb, LED light bar, fog light", 39),
            _c("Oils & Fluids", "engine oil, coolant, windscreen washer fluid", 19),
        ),
        ("Roadmaster", "Autovia", "Pitlane", "Gearhead", "Motorsure", "Highway Pro", "Torrent",
         "Carbonado"),
        ("universal", "heavy-duty", "high-performance", "anti-slip", "all-season", "portable",
         "long-life", "weather-resistant", "easy-fit", "certified"),
        ("rubber", "steel", "aluminium", "leather", "polycarbonate", "microfibre"),
        ("Fits most cars, vans and SUVs.",
         "Installs in minutes without special tools.",
         "Records in full HD with night vision.",
         "Certified to ECE road safety standards.",
         "Protects paintwork against rain, salt and UV light.",
         "Starts engines up to {litres} litres."),
        ("long road trips", "winter driving", "the daily commute", "track days",
         "off-road adventures", "classic car owners"),
    ),
    Department(
        "Office & Stationery",
        ("Premium", "Everyday", "Eco", "Compact", "Professional", "Student"),
        True,
        (
            _c("Pens & Writing", "fountain pen, ballpoint pen, pencil set, highlighters", 15),
            _c("Notebooks", "notebook, planner, sketchbook, journal", 14),
            _c("Desk Accessories", "desk organiser, desk lamp, monitor stand, desk mat", 35),
            _c("Printers", "printer, scanner, label maker", 179),
            _c("Office Chairs", "office chair, ergonomic chair, kneeling chair", 249),
            _c("Paper", "printer paper, envelopes, sticky notes", 12),
            _c("Filing", "file folder, ring binder, document box", 11),
            _c("Computer Accessories", "keyboard, mouse, webcam, USB hub", 45),
        ),
        ("Scriptura", "Deskwell", "Papiro", "Inkwell & Co", "Officio", "Linea", "Studio North",
         "Brightdesk"),
        ("ergonomic", "refillable", "recycled", "dotted", "wireless", "adjustable",
         "mechanical", "slim", "archival", "colour-coded"),
        ("recycled paper", "aluminium", "bamboo", "leather", "plastic", "mesh fabric"),
        ("Acid-free paper that does not bleed through.",
         "Adjusts in height for a healthy posture.",
         "Refillable with standard cartridges.",
         "Connects over Bluetooth or the included USB receiver.",
         "Comes in a pack of {pack}.",
         "Made from recycled materials."),
        ("the home office", "students", "meetings", "creative work", "long workdays",
         "journaling"),
    ),
)
# fmt: on


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower().replace("'", "")).strip("-")


@dataclass(frozen=True, slots=True)
class CategorySeed:
    id: uuid.UUID
    name: str
    slug: str
    parent_slug: str | None


@dataclass(frozen=True, slots=True)
class Leaf:
    """A grandchild category, where products live, with the words of its department."""

    slug: str
    segment: str
    department: Department
    child: Child


def category_id(slug: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"category:{slug}")


def category_tree() -> tuple[list[CategorySeed], list[Leaf]]:
    """Every category, parents before children, and the leaves in a fixed order."""
    categories: list[CategorySeed] = []
    leaves: list[Leaf] = []
    for department in DEPARTMENTS:
        top = slugify(department.name)
        categories.append(CategorySeed(category_id(top), department.name, top, None))
        for child in department.children:
            middle = slugify(child.name)
            categories.append(CategorySeed(category_id(middle), child.name, middle, top))
            for segment in department.segments:
                name = (
                    f"{segment} {child.name}"
                    if department.segment_first
                    else f"{child.name} {segment}"
                )
                slug = f"{middle}-{slugify(segment)}"
                categories.append(CategorySeed(category_id(slug), name, slug, middle))
                leaves.append(Leaf(slug, segment, department, child))
    slugs = [c.slug for c in categories]
    if len(set(slugs)) != len(slugs):
        raise AssertionError("category slugs must be unique")
    return categories, leaves


# --- products ----------------------------------------------------------------


def product_id(seed: int, n: int) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"seed:{seed}:product:{n}")


def product_sku(seed: int, n: int) -> str:
    return f"SD{seed}-{n:07d}"


def _price(rng: random.Random, base: float) -> int:
    """Minor units, log-normal around the child's typical price, ending in .99 or .49."""
    dollars = max(1.0, base * math.exp(rng.gauss(0.0, 0.55)))
    whole = max(1, round(dollars))
    return whole * 100 - (1 if rng.random() < 0.8 else 51)


def _model(rng: random.Random) -> str:
    letters = "ABCDEFGHJKLMNPRSTVXZ"
    style = rng.random()
    if style < 0.4:
        return f"{rng.choice(letters)}{rng.randrange(1, 100) * 10}"
    if style < 0.7:
        return rng.choice(("Pro", "Lite", "Max", "Air", "Plus", "Mini", "Go", "One"))
    return ""


def _fill(sentence: str, rng: random.Random) -> str:
    return sentence.format(
        hours=rng.randrange(8, 61),
        saving=rng.randrange(15, 46),
        weight=rng.randrange(180, 2400, 10),
        days=rng.choice((7, 14, 28)),
        pieces=rng.choice((24, 48, 120, 250, 500, 1000)),
        pages=rng.randrange(120, 640, 8),
        power=rng.choice((18, 20, 400, 750, 1200, 1800)),
        litres=rng.choice((2.0, 3.5, 5.0, 7.0)),
        pack=rng.choice((3, 5, 10, 12, 50)),
        warranty=rng.choice((1, 2, 3, 5)),
        rating=rng.choice(("4.2", "4.5", "4.7", "4.8", "4.9")),
    )


def _attributes(
    rng: random.Random, leaf: Leaf, brand: str, colour: str, material: str
) -> dict[str, Any]:
    department, child = leaf.department, leaf.child
    attributes: dict[str, Any] = {
        "brand": brand,
        "colour": colour,
        "material": material,
        "rating": round(rng.uniform(2.5, 5.0), 1),
        "weight_g": rng.randrange(50, 5000, 10),
    }
    if department.sizes:
        if child.name in ("Shoes", "Running"):
            attributes["size"] = str(rng.randrange(36, 47))
        else:
            attributes["size"] = rng.choice(department.sizes)
    match department.name:
        case "Electronics":
            attributes["wireless"] = rng.random() < 0.6
            attributes["battery_hours"] = rng.randrange(4, 61)
            attributes["warranty_years"] = rng.choice((1, 2, 3))
        case "Home & Kitchen":
            attributes["dishwasher_safe"] = rng.random() < 0.5
            attributes["eco_friendly"] = rng.random() < 0.3
        case "Fashion":
            attributes["fit"] = rng.choice(("slim", "regular", "relaxed"))
            attributes["recycled"] = rng.random() < 0.25
        case "Sports & Outdoors":
            attributes["waterproof"] = rng.random() < 0.45
            attributes["level"] = rng.choice(("beginner", "intermediate", "advanced"))
        case "Beauty & Health":
            attributes["volume_ml"] = rng.choice((15, 30, 50, 100, 200, 400))
            attributes["vegan"] = rng.random() < 0.55
        case "Toys & Games":
            attributes["age_min"] = rng.choice((0, 1, 3, 5, 8, 12, 14))
            attributes["batteries_included"] = rng.random() < 0.3
        case "Books & Media":
            attributes["language"] = rng.choice(("English", "German", "French", "Spanish"))
            attributes["pages"] = rng.randrange(48, 900, 4)
        case "Garden & DIY":
            attributes["cordless"] = rng.random() < 0.5
            attributes["power_w"] = rng.choice((18, 20, 400, 750, 1200, 1800))
        case "Automotive":
            attributes["universal_fit"] = rng.random() < 0.7
            attributes["warranty_years"] = rng.choice((1, 2, 5))
        case _:
            attributes["recycled"] = rng.random() < 0.4
            attributes["pack_size"] = rng.choice((1, 3, 5, 10, 12))
    return attributes


def product_block(
    seed: int, block: int, leaves: Sequence[Leaf], leaf_ids: Sequence[uuid.UUID]
) -> list[tuple[Any, ...]]:
    """The rows of products ``block * BLOCK`` up to the next block, in COPY column order."""
    rng = random.Random(seed * 1_000_003 + block)  # noqa: S311 - demo data, no secret
    rows: list[tuple[Any, ...]] = []
    for n in range(block * BLOCK, (block + 1) * BLOCK):
        index = rng.randrange(len(leaves))
        leaf = leaves[index]
        department, child = leaf.department, leaf.child
        brand = rng.choice(department.brands)
        colour = rng.choice(COLOURS)
        material = rng.choice(department.materials)
        noun = rng.choice(child.nouns)
        adjective = rng.choice(department.adjectives + GENERIC_ADJECTIVES)
        model = _model(rng)
        title = " ".join(word[:1].upper() + word[1:] for word in noun.split())
        name = " ".join(part for part in (brand, adjective.capitalize(), title, model) if part)
        second = rng.choice([a for a in department.adjectives if a != adjective])
        sentences = [
            f"{second.capitalize()} {noun} from {brand} in {colour}, made of {material}.",
            *(_fill(s, rng) for s in rng.sample(department.features, 2)),
            f"Ideal for {rng.choice(department.uses)}.",
        ]
        if rng.random() < 0.5:
            sentences.append(_fill(rng.choice(GENERIC_SENTENCES), rng))
        attributes = _attributes(rng, leaf, brand, colour, material)
        pid = product_id(seed, n)
        images = [f"{IMAGE_HOST}/products/{pid}/{i}.jpg" for i in range(1, rng.randrange(2, 6))]
        on_hand = 0 if rng.random() < OUT_OF_STOCK_SHARE else int(rng.paretovariate(1.2) * 5)
        created_at = FIRST_CREATED_AT + timedelta(minutes=n, seconds=rng.randrange(60))
        updated_at = created_at + timedelta(hours=rng.randrange(0, 24 * 60))
        rows.append((
            pid, product_sku(seed, n), name, " ".join(sentences), _price(rng, child.base_price),
            CURRENCY, leaf_ids[index], orjson.dumps(attributes).decode(), images,
            min(on_hand, 5000), 0, created_at, updated_at,
        ))  # fmt: skip
    return rows


# --- loading -----------------------------------------------------------------


@dataclass(slots=True)
class Report:
    categories_inserted: int = 0
    categories_total: int = 0
    products_inserted: int = 0
    products_present: int = 0
    indexes_rebuilt: int = 0
    seconds: float = 0.0
    copy_seconds: float = 0.0
    index_seconds: float = 0.0
    analyze_seconds: float = 0.0
    pages_all_visible: float = 0.0


async def connect(database_url: str) -> asyncpg.Connection:
    url = make_url(database_url)
    return await asyncpg.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        database=url.database,
    )


async def ensure_categories(
    conn: asyncpg.Connection, categories: Sequence[CategorySeed]
) -> tuple[dict[str, uuid.UUID], int]:
    """Insert the tree where missing; the id of every slug as stored, and how many were new."""
    stored: dict[str, tuple[uuid.UUID, str]] = {}
    inserted = 0
    for level in (0, 1, 2):
        wanted = [c for c in categories if _depth(c, categories) == level]
        for category in wanted:
            if category.parent_slug is None:
                parent_id, parent_path = None, "/"
            else:
                parent_id, parent_path = stored[category.parent_slug]
            status = await conn.execute(
                "INSERT INTO categories (id, name, slug, parent_id, path) "
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                category.id, category.name, category.slug, parent_id,
                f"{parent_path}{category.id.hex}/",
            )  # fmt: skip
            inserted += int(status.rsplit(" ", 1)[1])
        rows = await conn.fetch(
            "SELECT id, slug, path FROM categories WHERE slug = ANY($1::text[])",
            [c.slug for c in wanted],
        )
        stored.update({row["slug"]: (row["id"], row["path"]) for row in rows})
    return {slug: ids[0] for slug, ids in stored.items()}, inserted


def _depth(category: CategorySeed, categories: Sequence[CategorySeed]) -> int:
    by_slug = {c.slug: c for c in categories}
    depth = 0
    while category.parent_slug is not None:
        category = by_slug[category.parent_slug]
        depth += 1
    return depth


def block_ids(seed: int, block: int, products: int) -> list[uuid.UUID]:
    """The ids of the products of ``block`` below ``products``."""
    last = min((block + 1) * BLOCK, products)
    return [product_id(seed, n) for n in range(block * BLOCK, last)]


async def present_ids(conn: asyncpg.Connection, ids: list[uuid.UUID]) -> set[uuid.UUID]:
    rows = await conn.fetch("SELECT id FROM products WHERE id = ANY($1::uuid[])", ids)
    return {row["id"] for row in rows}


async def secondary_indexes(conn: asyncpg.Connection) -> list[tuple[str, str]]:
    """(name, CREATE statement) of every non-unique index on ``products`` outside a constraint."""
    rows = await conn.fetch(
        """
        SELECT i.relname AS name, pg_get_indexdef(x.indexrelid) AS definition
        FROM pg_index x
        JOIN pg_class i ON i.oid = x.indexrelid
        WHERE x.indrelid = 'products'::regclass
          AND NOT x.indisunique
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
        ORDER BY i.relname
        """
    )
    return [(row["name"], row["definition"]) for row in rows]


async def seed_catalog(
    database_url: str,
    *,
    products: int,
    seed: int = DEFAULT_SEED,
    rebuild_threshold: int = DEFAULT_REBUILD_THRESHOLD,
    progress: bool = True,
) -> Report:
    started = time.perf_counter()
    report = Report()
    categories, leaves = category_tree()
    blocks = range(math.ceil(products / BLOCK))
    conn = await connect(database_url)
    try:
        # The load commits synchronously: VACUUM cannot mark a page all-visible while
        # the commit of its rows is not yet flushed, and an asynchronous one (off)
        # left every page unmarked (relallvisible 0), so the planner costed the
        # filtered listing's index-only walk as reading the table for each entry.
        await conn.execute("SET statement_timeout = 0")
        await conn.execute("SET maintenance_work_mem = '512MB'")
        async with conn.transaction():
            ids_by_slug, report.categories_inserted = await ensure_categories(conn, categories)
            report.categories_total = len(ids_by_slug)
            leaf_ids = [ids_by_slug[leaf.slug] for leaf in leaves]

            # Only the ids already stored are kept (none on a first load), not all N.
            present: dict[int, set[uuid.UUID]] = {}
            for block in blocks:
                found = await present_ids(conn, block_ids(seed, block, products))
                if found:
                    present[block] = found
            report.products_present = sum(len(ids) for ids in present.values())
            missing = products - report.products_present
            if missing == 0:
                report.seconds = time.perf_counter() - started
                return report

            rows_before = int(await conn.fetchval("SELECT count(*) FROM products"))
            dropped: list[tuple[str, str]] = []
            if missing >= rebuild_threshold and missing > rows_before:
                await conn.execute("LOCK TABLE products IN ACCESS EXCLUSIVE MODE")
                dropped = await secondary_indexes(conn)
                for name, _ in dropped:
                    await conn.execute(f'DROP INDEX "{name}"')

            copy_started = time.perf_counter()
            for block in blocks:
                stored = present.get(block, set())
                size = min((block + 1) * BLOCK, products) - block * BLOCK
                if len(stored) == size:
                    continue
                rows = [
                    row
                    for row in product_block(seed, block, leaves, leaf_ids)[:size]
                    if row[0] not in stored
                ]
                await conn.copy_records_to_table(
                    "products", records=rows, columns=list(PRODUCT_COLUMNS)
                )
                report.products_inserted += len(rows)
                if progress and report.products_inserted % 100_000 < len(rows):
                    elapsed = time.perf_counter() - copy_started
                    print(
                        f"  {report.products_inserted:,} of {missing:,} products copied "
                        f"({elapsed:.0f} s)",
                        flush=True,
                    )
            report.copy_seconds = time.perf_counter() - copy_started

            index_started = time.perf_counter()
            for name, definition in dropped:
                if progress:
                    print(f"  recreating {name}", flush=True)
                await conn.execute(definition)
            report.indexes_rebuilt = len(dropped)
            report.index_seconds = time.perf_counter() - index_started

        analyze_started = time.perf_counter()
        # VACUUM too: a freshly loaded table's pages are not yet marked all-visible,
        # and the filtered listing's index-only walk (migration 0006) would read the
        # table for every entry until autovacuum came by.
        await conn.execute("VACUUM (ANALYZE) categories")
        await conn.execute("VACUUM (ANALYZE) products")
        # The vocabulary the load's trigger filled: without statistics the planner
        # takes the typo lookup's table for empty (it was, when it was last looked at).
        await conn.execute("VACUUM (ANALYZE) search_words")
        report.pages_all_visible = float(
            await conn.fetchval(
                "SELECT relallvisible::float8 / greatest(relpages, 1) FROM pg_class "
                "WHERE oid = 'products'::regclass"
            )
        )
        report.analyze_seconds = time.perf_counter() - analyze_started
    finally:
        await conn.close()
    report.seconds = time.perf_counter() - started
    return report


def default_database_url() -> str:
    from catalog.settings import CatalogSettings

    return CatalogSettings().database_url


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="seed_catalog.py",
        description="Load a deterministic demo catalogue with COPY (idempotent).",
    )
    parser.add_argument(
        "--products", type=int, default=DEFAULT_PRODUCTS, help="products to have (default 100000)"
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help="another seed adds other products"
    )
    parser.add_argument(
        "--database-url",
        help="SQLAlchemy URL of the catalogue database (default: CATALOG_DATABASE_URL)",
    )
    parser.add_argument(
        "--rebuild-threshold",
        type=int,
        default=DEFAULT_REBUILD_THRESHOLD,
        help="drop and recreate the secondary indexes when adding at least this many "
        "products, and more than the table holds (default 50000)",
    )
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    args = parser.parse_args(argv)
    if args.products < 0 or args.seed < 0:
        parser.error("--products and --seed must not be negative")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    url = args.database_url or default_database_url()
    name = make_url(url).database
    if not args.quiet:
        print(f"seeding {args.products:,} products (seed {args.seed}) into {name}", flush=True)
    report = asyncio.run(
        seed_catalog(
            url,
            products=args.products,
            seed=args.seed,
            rebuild_threshold=args.rebuild_threshold,
            progress=not args.quiet,
        )
    )
    if report.products_inserted == 0:
        print(
            f"already seeded: {report.categories_total} categories "
            f"({report.categories_inserted} new) and {report.products_present:,} products "
            f"present; nothing to load ({report.seconds:.1f} s)"
        )
        return 0
    print(
        f"seeded {report.products_inserted:,} products ({report.products_present:,} were "
        f"present) and {report.categories_inserted} of {report.categories_total} categories "
        f"in {report.seconds:.1f} s: COPY {report.copy_seconds:.1f} s, "
        f"{report.indexes_rebuilt} indexes rebuilt in {report.index_seconds:.1f} s, "
        f"VACUUM and ANALYZE {report.analyze_seconds:.1f} s "
        f"({report.pages_all_visible:.0%} of the pages all-visible)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What the catalogue app is built from, typed: the composition root installs it, routes take it."""

from __future__ import annotations

from dataclasses import dataclass

from catalog.use_cases.ports import CatalogPorts
from emporium_kit.pagination import CursorCodec
from emporium_kit.wiring import AppSlot


@dataclass(frozen=True, slots=True)
class CatalogComponents:
    ports: CatalogPorts
    """What the use cases are given."""
    product_cursors: CursorCodec
    """Signs and reads the cursors of the product listing."""


CATALOG: AppSlot[CatalogComponents] = AppSlot("catalog")
"""The app's components, installed by its composition root."""

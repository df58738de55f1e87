"""What the ops app is built from, typed: the composition root installs it, routes take it."""

from __future__ import annotations

from dataclasses import dataclass

from emporium_kit.pagination import CursorCodec
from emporium_kit.wiring import AppSlot
from ops.use_cases.ports import OpsPorts


@dataclass(frozen=True, slots=True)
class OpsComponents:
    ports: OpsPorts
    """What the use cases are given."""
    dead_letter_cursors: CursorCodec
    """Signs and reads the cursors of the dead-letter listing."""


OPS: AppSlot[OpsComponents] = AppSlot("ops")
"""The app's components, installed by its composition root."""

"""Pydantic field types that keep hostile text out of the database.

PostgreSQL rejects NUL bytes in ``text`` (a driver error, i.e. a 500 if it got
that far), and control characters in names end up in emails and logs. These
types turn both into ordinary 422 validation errors.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ANY_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _no_control_chars(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


def _single_line(value: str) -> str:
    if _ANY_CONTROL.search(value):
        raise ValueError("must be a single line without control characters")
    return value


# The same rules as JSON Schema patterns, so OpenAPI documents promise only what is accepted.
TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
LINE_PATTERN = r"^[^\x00-\x1f\x7f]*$"

# Multi-line text (descriptions): tabs and newlines allowed, other controls not.
Text = Annotated[
    str, AfterValidator(_no_control_chars), Field(json_schema_extra={"pattern": TEXT_PATTERN})
]
# One line (names, tokens, ids from clients).
Line = Annotated[
    str, AfterValidator(_single_line), Field(json_schema_extra={"pattern": LINE_PATTERN})
]

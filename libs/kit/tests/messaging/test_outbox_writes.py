"""An outbox row carries the request it was written in, without the caller's help."""

from __future__ import annotations

import sqlalchemy as sa

from emporium_kit.context import request_id_var
from emporium_kit.messaging.outbox import event_write
from emporium_kit.messaging.tables import define_outbox_table

OUTBOX = define_outbox_table(sa.MetaData(), name="outbox_writes_test")


def test_an_event_written_in_a_request_carries_its_request_id() -> None:
    token = request_id_var.set("req-ambient")
    try:
        inside = event_write(OUTBOX, "catalog.product_created.v1", {"id": "p-1"})
        overridden = event_write(
            OUTBOX, "catalog.product_created.v1", {"id": "p-1"}, headers={"x-request-id": "mine"}
        )
    finally:
        request_id_var.reset(token)
    outside = event_write(OUTBOX, "catalog.product_created.v1", {"id": "p-1"})

    assert inside.parameters["headers"]["x-request-id"] == "req-ambient"
    assert overridden.parameters["headers"]["x-request-id"] == "mine"
    assert "x-request-id" not in outside.parameters["headers"]

"""Reliable integration events: transactional outbox, relay and idempotent consumer."""

from .broker import (
    DEAD_LETTER_EXCHANGE,
    EXCHANGE,
    connect,
    dead_letter_queue_name,
    declare_dead_letter_exchange,
    declare_events_exchange,
    declare_quorum_queue,
)
from .consumer import EventConsumer, EventHandler
from .envelope import (
    REQUEST_ID_HEADER,
    TRACEPARENT_HEADER,
    EventEnvelope,
    JSONValue,
    trace_id_from_traceparent,
)
from .outbox import add_event
from .relay import OutboxRelay
from .tables import define_inbox_table, define_outbox_table

__all__ = [
    "DEAD_LETTER_EXCHANGE",
    "EXCHANGE",
    "REQUEST_ID_HEADER",
    "TRACEPARENT_HEADER",
    "EventConsumer",
    "EventEnvelope",
    "EventHandler",
    "JSONValue",
    "OutboxRelay",
    "add_event",
    "connect",
    "dead_letter_queue_name",
    "declare_dead_letter_exchange",
    "declare_events_exchange",
    "declare_quorum_queue",
    "define_inbox_table",
    "define_outbox_table",
    "trace_id_from_traceparent",
]

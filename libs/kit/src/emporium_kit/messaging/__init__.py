"""Reliable integration events on RabbitMQ.

The package itself is the broker side only (connections, exchanges, queues,
the event envelope) and needs nothing but aio-pika: the gateway's cache
listener uses it without a database. The transactional parts need the
``database`` part as well and are imported by module:

* :mod:`emporium_kit.messaging.outbox` (``add_event``) and
  :mod:`emporium_kit.messaging.tables` (``define_outbox_table``,
  ``define_inbox_table``),
* :mod:`emporium_kit.messaging.relay` (``OutboxRelay``),
* :mod:`emporium_kit.messaging.consumer` (``EventConsumer``, the inbox).
"""

from .broker import (
    CONNECT_ERRORS,
    DEAD_LETTER_EXCHANGE,
    EXCHANGE,
    JOBS_EXCHANGE,
    connect,
    dead_letter_queue_name,
    declare_dead_letter_exchange,
    declare_events_exchange,
    declare_jobs_exchange,
    declare_quorum_queue,
    rabbitmq_check,
)
from .envelope import (
    REQUEST_ID_HEADER,
    TRACEPARENT_HEADER,
    EventEnvelope,
    JSONValue,
    trace_id_from_traceparent,
)

__all__ = [
    "CONNECT_ERRORS",
    "DEAD_LETTER_EXCHANGE",
    "EXCHANGE",
    "JOBS_EXCHANGE",
    "REQUEST_ID_HEADER",
    "TRACEPARENT_HEADER",
    "EventEnvelope",
    "JSONValue",
    "connect",
    "dead_letter_queue_name",
    "declare_dead_letter_exchange",
    "declare_events_exchange",
    "declare_jobs_exchange",
    "declare_quorum_queue",
    "rabbitmq_check",
    "trace_id_from_traceparent",
]

"""The users service's background jobs, by kind: what the use cases enqueue.

A kind names a job and its policy (its retry limit); the worker
(``users.worker``) declares the function that runs it. Use cases enqueue a
kind through their unit of work (``uow.add_job``), so the job commits with
the change that causes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class JobKind:
    task_name: str
    labels: dict[str, Any] = field(default_factory=dict)


SEND_PASSWORD_RESET_EMAIL = JobKind(
    "users.send_password_reset_email",
    # About ten minutes of SMTP outage with the default backoff (1 s doubling to 60 s).
    {"max_attempts": 14},
)
DELETE_EXPIRED_CREDENTIALS = JobKind("users.delete_expired_credentials", {"max_attempts": 3})
PRUNE_OUTBOX_AND_INBOX = JobKind("users.prune_outbox_and_inbox", {"max_attempts": 3})

"""Retries with exponential backoff and full jitter, then one dead letter.

taskiq's ``SmartRetryMiddleware`` does the re-sending (the same job id, a
``delay`` label the broker turns into a wait in the delay queue); this
subclass decides *whether* and *how long*:

* an error that retrying cannot fix goes straight to the dead letters
  (:func:`emporium_kit.retrying.is_retryable`: :class:`PermanentJobError`,
  a provider's 4xx say, a validation error, a ``LookupError`` for a row that
  is gone, a ``TypeError`` or ``ValueError`` for wrong arguments);
* any other error is retried after ``uniform(0, min(max_delay, base_delay * 2**n))``
  seconds (tenacity's ``wait_random_exponential``), up to the job's
  ``max_attempts`` label (attempts in all, the first included);
* the last failure publishes a :class:`~emporium_kit.messaging.dead_letters.DeadLetter`
  (with the job's message, reset to a fresh retry budget, so a replay gets
  every attempt again) on a confirming channel before the message is
  acknowledged.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog
from aio_pika.abc import AbstractExchange
from taskiq import TaskiqMessage, TaskiqResult
from taskiq.exceptions import NoResultError
from taskiq.kicker import AsyncKicker
from taskiq.middlewares import SmartRetryMiddleware

from emporium_kit.messaging.dead_letters import (
    DeadLetter,
    declare_dead_letters,
    publish_dead_letter,
)
from emporium_kit.retrying import PermanentError, backoff_seconds, is_retryable

from .observability import JOBS_DEAD_LETTERED, JOBS_RETRIED

log = structlog.get_logger(__name__)

MAX_ATTEMPTS_LABEL = "max_attempts"
FIRST_FAILED_LABEL = "first_failed_at"
_RETRIES_LABEL = "_retries"


PermanentJobError = PermanentError
"""An error retrying cannot fix: the job goes straight to the dead letters."""


class JobRetries(SmartRetryMiddleware):
    def __init__(
        self,
        *,
        service: str,
        queue: str,
        max_retries: int,
        base_delay: float,
        max_delay: float,
        dead_letters_queue: str,
    ) -> None:
        super().__init__(
            default_retry_count=max_retries,
            default_retry_label=True,
            default_delay=base_delay,
            use_jitter=True,
            use_delay_exponent=True,
            max_delay_exponent=max_delay,
        )
        self._service = service
        self._queue = queue
        self._dead_letters: AbstractExchange | None = None
        self._dead_letters_queue = dead_letters_queue

    def make_delay(self, message: TaskiqMessage, retries: int) -> float:
        return backoff_seconds(retries, base=self.default_delay, cap=self.max_delay_exponent)

    def _max_attempts(self, message: TaskiqMessage) -> int:
        return int(message.labels.get(MAX_ATTEMPTS_LABEL, self.default_retry_count))

    async def on_error(
        self, message: TaskiqMessage, result: TaskiqResult[Any], exception: BaseException
    ) -> None:
        if isinstance(exception, NoResultError):
            return
        attempt = int(message.labels.get(_RETRIES_LABEL, 0)) + 1
        first_failed_at = message.labels.get(FIRST_FAILED_LABEL) or datetime.now(UTC).isoformat()
        retryable = is_retryable(exception)
        if retryable and attempt < self._max_attempts(message):
            delay = self.make_delay(message, attempt)
            kicker: AsyncKicker[Any, Any] = (
                AsyncKicker(task_name=message.task_name, broker=self.broker, labels=message.labels)
                .with_task_id(message.task_id)
                .with_labels(**{_RETRIES_LABEL: attempt, FIRST_FAILED_LABEL: first_failed_at})
            )
            await self.on_send(kicker, message, delay)
            result.error = NoResultError()
            JOBS_RETRIED.labels(job=message.task_name).inc()
            log.warning(
                "job_retry_scheduled",
                job=message.task_name,
                job_id=message.task_id,
                attempt=attempt,
                retry_in=round(delay, 3),
                error=repr(exception),
            )
            return
        await self._dead_letter(message, exception, attempt, first_failed_at)
        JOBS_DEAD_LETTERED.labels(job=message.task_name).inc()
        log.error(
            "job_dead_lettered",
            job=message.task_name,
            job_id=message.task_id,
            attempts=attempt,
            retryable=retryable,
            error=repr(exception),
        )

    async def _dead_letter(
        self, message: TaskiqMessage, error: BaseException, attempts: int, first_failed_at: str
    ) -> None:
        fresh = message.model_copy(
            update={
                "labels": {
                    key: value
                    for key, value in message.labels.items()
                    if key not in (_RETRIES_LABEL, FIRST_FAILED_LABEL, "delay")
                }
            }
        )
        sent = self.broker.formatter.dumps(fresh)
        letter = DeadLetter.of(
            service=self._service,
            queue=self._queue,
            kind="job",
            name=message.task_name,
            message_id=message.task_id,
            body=sent.message,
            headers={"task_id": message.task_id, "task_name": message.task_name},
            attempts=attempts,
            first_failed_at=datetime.fromisoformat(str(first_failed_at)),
            error=error,
        )
        await publish_dead_letter(
            await self._dead_letter_exchange(), letter, self._dead_letters_queue
        )

    async def _dead_letter_exchange(self) -> AbstractExchange:
        if self._dead_letters is None:
            channel = getattr(self.broker, "write_channel", None)
            if channel is None:
                raise RuntimeError("the job broker is not started: no channel for dead letters")
            self._dead_letters, _ = await declare_dead_letters(channel, self._dead_letters_queue)
        return self._dead_letters

"""What is worth retrying, and how long to wait: one rule for jobs and event consumers.

Retries and their backoff go through tenacity: :func:`backoff_seconds` is
tenacity's full-jitter exponential wait (``uniform(0, min(cap, base * 2**n))``),
used where the wait becomes a message's delay rather than a sleep.
"""

from __future__ import annotations

from pydantic import ValidationError
from tenacity import RetryCallState, wait_random_exponential


class PermanentError(Exception):
    """Retrying cannot help (a provider refused the request as invalid, say)."""


PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    PermanentError,
    ValidationError,
    LookupError,
    TypeError,
    ValueError,
)
"""Errors that go straight to the dead letters: the request or its data is wrong,
or the row it is about is gone; running it again gives the same answer."""


def is_retryable(error: BaseException) -> bool:
    return not isinstance(error, PERMANENT_ERRORS)


def backoff_seconds(attempt: int, *, base: float, cap: float) -> float:
    """The wait before retry ``attempt`` (1-based), by tenacity's ``wait_random_exponential``."""
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = max(1, attempt)
    return float(wait_random_exponential(multiplier=base, max=cap)(state))

"""Domain errors, each named for the rule it enforces and carrying a stable code."""

from __future__ import annotations

from datetime import datetime


class OpsError(Exception):
    code = "ops-error"


class DeadLetterNotFound(OpsError):
    code = "dead-letter-not-found"

    def __init__(self) -> None:
        super().__init__("No such dead letter.")


class AlreadyReplayed(OpsError):
    code = "already-replayed"

    def __init__(self, replayed_at: datetime) -> None:
        super().__init__(
            f"This dead letter was already replayed at {replayed_at.isoformat()}; "
            "a dead letter goes back on its queue once."
        )
        self.replayed_at = replayed_at


class NotReplayable(OpsError):
    code = "not-replayable"

    def __init__(self) -> None:
        super().__init__(
            "This message arrived on the dead-letters queue without being a dead letter "
            "(its body did not parse): it has no original queue to go back to."
        )


class OriginalQueueGone(OpsError):
    code = "queue-gone"

    def __init__(self, queue: str) -> None:
        super().__init__(
            f"The queue {queue!r} no longer exists, so nothing would receive the replay; "
            "the dead letter was not marked replayed."
        )
        self.queue = queue

"""Typed wiring: the composition root hands each app its parts, and dependencies get them typed.

A service builds its parts once, in its composition root, into one frozen
dataclass (its container) and installs it on the app; its routes declare
``Annotated[Container, Depends(SLOT)]`` and receive exactly that object. The
slot is generic in what it holds, so installing the wrong kind of object, or
reading a part the container does not have, fails ``mypy --strict`` instead
of a request at run time. It is the one place that touches ``app.state``.

    USERS: AppSlot[UsersContainer] = AppSlot("users")
    USERS.install(app, container)            # composition root
    Services = Annotated[UsersContainer, Depends(USERS)]   # routes
"""

from __future__ import annotations

from typing import Generic, TypeVar, cast

from starlette.applications import Starlette
from starlette.requests import HTTPConnection

T = TypeVar("T")


class AppSlot(Generic[T]):
    """One typed object per app; an async FastAPI dependency that returns it."""

    def __init__(self, name: str) -> None:
        self._attribute = f"emporium_{name}"
        self.name = name

    def install(self, app: Starlette, value: T) -> None:
        setattr(app.state, self._attribute, value)

    def get(self, app: Starlette) -> T:
        try:
            return cast(T, getattr(app.state, self._attribute))
        except AttributeError:
            raise LookupError(f"nothing installed in the app slot {self.name!r}") from None

    # async: FastAPI runs plain-def dependencies in a worker thread (a costly hop).
    async def __call__(self, connection: HTTPConnection) -> T:
        return self.get(connection.app)

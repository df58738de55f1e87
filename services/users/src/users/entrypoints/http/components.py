"""What the users app is built from, typed: the composition root installs it, routes take it.

``users.main.create_app`` builds one :class:`UsersComponents` and installs it
with ``USERS.install(app, components)``; a route declares
``components: Components`` (``entrypoints.http.dependencies``) and gets that
object. The slot is typed, so installing anything else, or reading a part
that is not here, fails ``mypy --strict``.
"""

from __future__ import annotations

from dataclasses import dataclass

from emporium_kit.client_ip import ClientIpResolver
from emporium_kit.pagination import CursorCodec
from emporium_kit.wiring import AppSlot
from users.use_cases.ports_and_policy import PortsAndPolicy


@dataclass(frozen=True, slots=True)
class UsersComponents:
    ports: PortsAndPolicy
    """What the use cases are given."""
    jwks_json: bytes
    """The public signing keys, serialised once: the JWKS route's whole body."""
    user_cursors: CursorCodec
    """Signs and reads the cursors of the user listing."""
    client_ips: ClientIpResolver
    """Who the client is, believing X-Forwarded-For only from trusted proxies."""


USERS: AppSlot[UsersComponents] = AppSlot("users")
"""The app's components, installed by its composition root."""

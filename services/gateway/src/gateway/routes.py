"""The declarative route table: every public route, its service and who may call it.

A request that no route matches is a 404 and a known path with another method
a 405, both answered here without reaching a service. Access rules:

* :data:`ANYONE`: no token needed (a valid one still identifies the caller);
* :data:`USER`: a valid, unrevoked access token;
* :func:`permission`: a valid token carrying that permission.

Ownership ("your own order") is the service's business; the gateway only
keeps out requests that cannot pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from starlette.responses import Response

from emporium_kit.problems import problem_response


@dataclass(frozen=True, slots=True)
class Access:
    authenticated: bool
    permission: str | None = None

    def describe(self) -> str:
        if self.permission:
            return f"requires the `{self.permission}` permission"
        return "requires a valid access token" if self.authenticated else "open to anyone"


ANYONE = Access(authenticated=False)
USER = Access(authenticated=True)


def permission(name: str) -> Access:
    return Access(authenticated=True, permission=name)


USERS_ADMIN = permission("users:admin")
CATALOG_WRITE = permission("catalog:write")
ORDERS_MANAGE = permission("orders:manage")


@dataclass(frozen=True, slots=True)
class Route:
    """One path template served by one upstream.

    ``path`` is the template (``/api/v1/products/{id}``); the metrics middleware
    labels requests with it, so cardinality stays bounded.
    """

    path: str
    service: str
    access: Mapping[str, Access]
    auth_rate_limited: bool = False
    """Also counts against RATE_LIMIT_AUTH (credential-guessing surface)."""
    cacheable: bool = False
    """Anonymous GETs are cached (public catalogue reads)."""
    segments: tuple[str | None, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parts = tuple(
            None if part.startswith("{") and part.endswith("}") else part
            for part in self.path.strip("/").split("/")
        )
        object.__setattr__(self, "segments", parts)

    @property
    def methods(self) -> frozenset[str]:
        return frozenset(self.access)

    @property
    def allow_header(self) -> str:
        """The route's methods, and HEAD wherever GET is (the kit answers it as GET)."""
        methods = set(self.access)
        if "GET" in methods:
            methods.add("HEAD")
        return ", ".join(sorted(methods))

    @property
    def literal_count(self) -> int:
        return sum(1 for part in self.segments if part is not None)


def _route(
    path: str,
    service: str,
    *,
    auth_rate_limited: bool = False,
    cacheable: bool = False,
    **access: Access,
) -> Route:
    return Route(
        path=path,
        service=service,
        access={method.upper(): rule for method, rule in access.items()},
        auth_rate_limited=auth_rate_limited,
        cacheable=cacheable,
    )


ROUTES: tuple[Route, ...] = (
    # identity (users)
    _route("/api/v1/auth/register", "users", post=ANYONE, auth_rate_limited=True),
    _route("/api/v1/auth/login", "users", post=ANYONE, auth_rate_limited=True),
    _route("/api/v1/auth/refresh", "users", post=ANYONE, auth_rate_limited=True),
    _route("/api/v1/auth/logout", "users", post=ANYONE),
    _route("/api/v1/auth/password-reset/request", "users", post=ANYONE, auth_rate_limited=True),
    _route("/api/v1/auth/password-reset/confirm", "users", post=ANYONE, auth_rate_limited=True),
    _route("/api/v1/auth/sessions", "users", get=USER),
    _route("/api/v1/auth/sessions/{id}", "users", delete=USER),
    _route("/api/v1/users/me", "users", get=USER, patch=USER),
    _route("/api/v1/users", "users", get=USERS_ADMIN),
    _route("/api/v1/users/{id}/roles", "users", put=USERS_ADMIN),
    _route("/.well-known/jwks.json", "users", get=ANYONE),
    # catalogue
    _route("/api/v1/categories", "catalog", get=ANYONE, post=CATALOG_WRITE, cacheable=True),
    _route("/api/v1/categories/{id}", "catalog", patch=CATALOG_WRITE, delete=CATALOG_WRITE),
    _route("/api/v1/products", "catalog", get=ANYONE, post=CATALOG_WRITE, cacheable=True),
    _route(
        "/api/v1/products/{id}",
        "catalog",
        get=ANYONE,
        patch=CATALOG_WRITE,
        delete=CATALOG_WRITE,
        cacheable=True,
    ),
    _route("/api/v1/products/{id}/stock", "catalog", put=CATALOG_WRITE),
    # orders
    _route("/api/v1/orders", "orders", get=USER, post=USER),
    _route("/api/v1/orders/{id}", "orders", get=USER),
    _route("/api/v1/orders/{id}/events", "orders", get=USER),
    _route("/api/v1/orders/{id}/cancel", "orders", post=USER),
    _route("/api/v1/orders/{id}/ship", "orders", post=ORDERS_MANAGE),
    _route("/api/v1/orders/{id}/deliver", "orders", post=ORDERS_MANAGE),
    # the payment provider authenticates with its Stripe-Signature, checked by orders
    _route("/api/v1/payments/webhook", "orders", post=ANYONE),
    _route("/api/v1/admin/dead-letters", "ops", get=permission("ops:admin")),
    _route("/api/v1/admin/dead-letters/{id}/replay", "ops", post=permission("ops:admin")),
)


_MATCHES_KEPT = 4096
_KEPT_PATH_LENGTH = 256  # longer paths are matched every time: 4,096 kept stay about 1 MB


class RouteTable:
    """Matches request paths to routes; literal segments beat parameters.

    Paths are split into segments once; the candidates are only the routes with
    the same number of segments, so a lookup is a handful of tuple compares, and
    the answers for the last :data:`_MATCHES_KEPT` paths (of at most
    :data:`_KEPT_PATH_LENGTH` characters) are kept.
    """

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = tuple(routes)
        # The paths last asked for and their routes: the hot ones are few (a
        # storefront's pages), and a client's made-up paths only evict each other.
        self._kept: Callable[[str], Route | None] = lru_cache(maxsize=_MATCHES_KEPT)(self._match)
        by_length: dict[int, list[Route]] = {}
        for route in self.routes:
            by_length.setdefault(len(route.segments), []).append(route)
        # Most literal first, so /users/me wins over /users/{id}.
        self._by_length = {
            length: tuple(sorted(group, key=lambda r: -r.literal_count))
            for length, group in by_length.items()
        }

    def match(self, path: str) -> Route | None:
        """The route serving ``path``, or None."""
        if len(path) <= _KEPT_PATH_LENGTH:
            return self._kept(path)
        return self._match(path)

    def _match(self, path: str) -> Route | None:
        parts = path.strip("/").split("/") if path != "/" else [""]
        if path.endswith("/") and path != "/":
            return None  # no route ends with a slash; never guess
        for route in self._by_length.get(len(parts), ()):
            if all(
                (expected is None and part != "") or expected == part
                for expected, part in zip(route.segments, parts, strict=True)
            ):
                return route
        return None

    def services(self) -> frozenset[str]:
        return frozenset(route.service for route in self.routes)

    def path_prefixes(self) -> tuple[str, ...]:
        """The first segments the table serves (``/api/``, ``/.well-known/``)."""
        return tuple(
            sorted({"/" + route.path.strip("/").split("/")[0] + "/" for route in self.routes})
        )


def default_route_table() -> RouteTable:
    return RouteTable(ROUTES)


def not_found() -> Response:
    """The answer to a path no route matches."""
    return problem_response(404, code="not-found", detail="No route matches this path.")


def method_not_allowed(route: Route, method: str) -> Response:
    """The answer to a known path asked with a method it does not have."""
    return problem_response(
        405,
        code="method-not-allowed",
        detail=f"{method} is not allowed here; use {route.allow_header}.",
        headers={"Allow": route.allow_header},
    )

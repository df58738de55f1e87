"""Step 4 of a request: may this caller call this route? 401, 403 or 503, else nothing.

The route table says what a route requires (:class:`gateway.routes.Access`);
its authentication says what the caller proved
(:class:`gateway.authentication.Authentication`).
A refused request never reaches a service.
"""

from __future__ import annotations

from starlette.responses import Response

from emporium_kit.problems import problem_response
from gateway.authentication import Authentication
from gateway.ratelimit import RateDecision
from gateway.routes import Access


def rate_limited(decision: RateDecision) -> Response | None:
    """The 429 for a refused rate limit (its ``RateLimit-*`` headers are added by the caller)."""
    if decision.allowed:
        return None
    return problem_response(
        429,
        code="rate-limited",
        detail=f"Too many requests; retry in {max(1, decision.reported.reset_after)} seconds.",
    )


def refusal(access: Access, caller: Authentication) -> Response | None:
    """Why ``caller`` may not call a route with ``access``, as a problem, or None."""
    principal = caller.principal
    if access.authenticated and principal is None:
        return _unauthenticated(caller)
    if access.permission and principal is not None and not principal.has(access.permission):
        return problem_response(
            403,
            code="forbidden",
            detail=f"This action requires the '{access.permission}' permission.",
        )
    return None


def _unauthenticated(caller: Authentication) -> Response:
    if caller.unavailable:
        return problem_response(
            503,
            code="dependency-unavailable",
            detail="redis is unavailable: token revocations cannot be checked.",
            headers={"Retry-After": "5"},
        )
    if caller.error is None:
        detail, challenge = "This route requires a bearer token.", "Bearer"
    else:
        detail, challenge = caller.error, 'Bearer error="invalid_token"'
    return problem_response(
        401,
        code="invalid-token" if caller.error else "authentication-required",
        detail=detail,
        headers={"WWW-Authenticate": challenge},
    )

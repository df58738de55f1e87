"""RFC 9457 problem documents: one shape for every error a service returns.

``install_problem_handlers`` maps FastAPI's validation errors (422, or 400 for
malformed JSON), HTTP errors, the service's domain errors and unexpected
exceptions to ``application/problem+json``. Tracebacks are logged, never sent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from emporium_kit.context import current_request_id

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_BASE_URI = "https://emporium.dev/problems/"

log = structlog.get_logger(__name__)

# The JSON Schema of a problem document, for OpenAPI documents.
PROBLEM_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An RFC 9457 problem document.",
    "required": ["type", "title", "status", "detail", "request_id"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "request_id": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "Validation errors (422 only).",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
}


class ProblemJSONResponse(JSONResponse):
    media_type = PROBLEM_CONTENT_TYPE


def problem_type(code: str) -> str:
    return f"{PROBLEM_BASE_URI}{code}"


def problem_body(
    status: int,
    *,
    code: str | None = None,
    title: str | None = None,
    detail: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    phrase = HTTPStatus(status).phrase
    body: dict[str, Any] = {
        "type": problem_type(code) if code else "about:blank",
        "title": title or phrase,
        "status": status,
        "detail": detail or phrase,
        "request_id": current_request_id(),
    }
    body.update(extra)
    return body


def problem_response(
    status: int,
    *,
    code: str | None = None,
    title: str | None = None,
    detail: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response:
    return ProblemJSONResponse(
        problem_body(status, code=code, title=title, detail=detail, **extra),
        status_code=status,
        headers=dict(headers) if headers else None,
    )


class ProblemError(Exception):
    """An error that already knows its problem document (used by entrypoints)."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.title = title
        self.headers = headers


class DependencyUnavailable(Exception):
    """A database, cache, broker or upstream did not answer: the client gets 503."""

    def __init__(self, dependency: str) -> None:
        super().__init__(f"{dependency} is unavailable")
        self.dependency = dependency


def _validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    return [
        {"loc": list(err.get("loc", ())), "msg": str(err.get("msg", "")), "type": err.get("type")}
        for err in errors
    ]


ErrorStatusMap = Mapping[type[Exception], int]
ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]


def install_problem_handlers(
    app: FastAPI,
    domain_errors: ErrorStatusMap | None = None,
    *,
    unavailable_errors: Sequence[type[BaseException]] = (),
) -> None:
    """Register the problem handlers.

    ``domain_errors`` maps a service's domain error classes to HTTP statuses; each
    error carries a stable ``code`` attribute used in the problem ``type``.
    ``unavailable_errors`` are infrastructure errors (connection refused, pool
    timeout) that become 503.
    """

    async def on_validation(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        if any(err.get("type") == "json_invalid" for err in errors):
            return problem_response(
                400, code="malformed-json", detail="The request body is not valid JSON."
            )
        return problem_response(
            422,
            code="validation-failed",
            title="Validation failed",
            detail="One or more fields are invalid.",
            errors=_validation_errors(errors),
        )

    async def on_http(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else None
        return problem_response(exc.status_code, detail=detail, headers=_with_head(exc.headers))

    async def on_problem(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ProblemError)
        return problem_response(
            exc.status, code=exc.code, title=exc.title, detail=exc.detail, headers=exc.headers
        )

    async def on_unavailable(_: Request, exc: Exception) -> Response:
        dependency = exc.dependency if isinstance(exc, DependencyUnavailable) else "a dependency"
        log.warning("dependency_unavailable", dependency=dependency, error=repr(exc))
        return problem_response(
            503,
            code="dependency-unavailable",
            detail=f"{dependency} is unavailable; try again shortly.",
            headers={"Retry-After": "5"},
        )

    async def on_unexpected(_: Request, exc: Exception) -> Response:
        log.exception("unhandled_exception", exc_info=exc)
        return problem_response(500, detail="An unexpected error occurred.")

    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(DependencyUnavailable, on_unavailable)
    for error_type in unavailable_errors:
        app.add_exception_handler(error_type, on_unavailable)  # type: ignore[arg-type]

    for error_type, status in (domain_errors or {}).items():
        app.add_exception_handler(error_type, _domain_handler(status))
    app.add_exception_handler(Exception, on_unexpected)


def _domain_handler(status: int) -> Any:
    async def handler(_: Request, exc: Exception) -> Response:
        code = getattr(exc, "code", "domain-error")
        headers = getattr(exc, "headers", None)
        return problem_response(status, code=code, detail=str(exc), headers=headers)

    return handler


def _with_head(headers: Mapping[str, str] | None) -> Mapping[str, str] | None:
    """A 405's ``Allow`` names HEAD wherever it names GET: the kit answers HEAD as GET
    (``HeadAsGetMiddleware``), though routes declare GET alone."""
    if not headers or "Allow" not in headers:
        return headers
    methods = {method.strip() for method in headers["Allow"].split(",") if method.strip()}
    if "GET" not in methods or "HEAD" in methods:
        return headers
    return {**headers, "Allow": ", ".join(sorted(methods | {"HEAD"}))}

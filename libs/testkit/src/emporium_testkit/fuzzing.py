"""Schemathesis checks shared by the services' fuzz suites and the gateway's.

``positive_data_acceptance`` fails when a request that the OpenAPI document
allows is refused: the document promised more than the API accepts. Some 400s
are not such a refusal. A value that only the server issues (a password-reset
token, a page cursor) can be described by its shape, but a generated one of
that shape was never issued, and the contract answers 400 for it, as it answers
404 for a generated id. Those problem types are passed in by the suite. In the
same way some 422s answer a well-formed body whose reference names nothing
(a generated category id) or whose fields contradict each other (a price range
upside down): a document cannot describe those, so the suite names them too.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from schemathesis import Case, CheckContext, CheckFunction, Response
from schemathesis.checks import positive_data_acceptance


def accepts_positive_data(
    *,
    unissued_value_problems: Collection[str],
    unmet_reference_problems: Collection[str] = (),
) -> CheckFunction:
    """``positive_data_acceptance``, except for a 400 or a 422 whose problem ``type`` is
    listed (in ``unissued_value_problems`` or ``unmet_reference_problems``)."""
    excused = {400: frozenset(unissued_value_problems), 422: frozenset(unmet_reference_problems)}

    def positive_data_accepted(
        ctx: CheckContext, response: Response, case: Case[Any]
    ) -> bool | None:
        listed = excused.get(response.status_code)
        if listed and _problem_type(response) in listed:
            return None
        result: bool | None = positive_data_acceptance(ctx, response, case)
        return result

    return positive_data_accepted


def _problem_type(response: Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    kind = body.get("type") if isinstance(body, dict) else None
    return kind if isinstance(kind, str) else None

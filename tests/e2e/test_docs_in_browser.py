"""``/docs`` in a real browser: Swagger UI renders the merged 3.1 document and its calls work.

A fetch of the page's HTML cannot tell whether Swagger UI can read the
document (Swagger UI 4 answers OpenAPI 3.1 with "Unable to render this
definition"), nor whether the docs CSP lets its script run and call the API.
So this drives Debian's chromium (``make test`` installs it) through
Playwright, which here may not download a browser of its own.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}
WAIT_MS = 15_000
PASSWORD = "docs-reader-1"


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not os.path.exists(CHROMIUM):  # noqa: ASYNC240 - once per module
        # Never a skip: a docs page nobody looked at is not known to render.
        pytest.fail("chromium is missing: `make test` installs it (scripts/ensure_chromium.sh)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox"]
        )
        yield launched
        await launched.close()


@pytest.fixture
async def docs(browser: Browser, system: Any) -> AsyncIterator[tuple[Page, list[str]]]:
    """The docs page, loading, and the console errors it logs."""
    page = await browser.new_page()
    page.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(f"{system.gateway}/docs")
    yield page, errors
    await page.close()


async def wait_for_operations(page: Page) -> None:
    # Either the operations or Swagger UI's refusal to read the document.
    await page.wait_for_selector(".opblock, .version-pragma")
    refusal = page.locator(".version-pragma")
    assert await refusal.count() == 0, await refusal.inner_text()


async def test_docs_list_every_public_operation_of_the_merged_document(
    docs: tuple[Page, list[str]], api: httpx.AsyncClient
) -> None:
    page, errors = docs
    await wait_for_operations(page)
    document = (await api.get("/openapi.json")).json()
    published = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }

    shown = await page.eval_on_selector_all(
        ".opblock",
        """blocks => blocks.map(block => [
            block.querySelector('.opblock-summary-method').textContent.trim(),
            block.querySelector('.opblock-summary-path').dataset.path,
        ])""",
    )

    assert document["openapi"].startswith("3.1")
    assert ("POST", "/api/v1/auth/register") in published
    # The catalogue runs in the system: its routes are in the merged document and on the page.
    assert {
        ("GET", "/api/v1/categories"),
        ("GET", "/api/v1/products"),
        ("GET", "/api/v1/products/{product_id}"),
        ("PUT", "/api/v1/products/{product_id}/stock"),
    } <= published
    assert {(method, path) for method, path in shown} == published
    assert errors == []


async def test_try_it_out_registers_a_user_through_the_page(
    docs: tuple[Page, list[str]],
) -> None:
    page, errors = docs
    await wait_for_operations(page)
    email = f"docs-{uuid.uuid4().hex[:12]}@example.com"
    operation = (
        page.locator(".opblock-post")
        .filter(has=page.locator('.opblock-summary-path[data-path="/api/v1/auth/register"]'))
        .first
    )

    await operation.locator(".opblock-summary").click()
    await operation.locator("button.try-out__btn").click()
    await operation.locator("textarea.body-param__text").fill(
        f'{{"email": "{email}", "password": "{PASSWORD}", "full_name": "Docs Reader"}}'
    )
    await operation.locator("button.execute").click()
    live = operation.locator(".live-responses-table .response")
    await live.first.wait_for()

    assert await live.locator(".response-col_status").first.inner_text() == "201"
    assert email in await live.locator(".response-col_description").first.inner_text()
    assert errors == []

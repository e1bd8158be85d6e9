"""The API documentation page renders in the browser, under the app's Content-Security-Policy."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_the_api_docs_show_the_operations_from_our_own_files(live_server, new_page, settings) -> None:
    requested: list[str] = []
    page = new_page(path="about:blank")
    page.on("request", lambda request: requested.append(request.url))
    page.goto("/api/docs/")

    ask = page.locator('.opblock-summary-path[data-path="/api/v1/ask"]')
    expect(ask).to_be_visible()
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/conversations/{id}/messages/").first).to_be_visible()
    # Nothing from another origin (new_page fails the test on any CSP violation).
    assert requested and all(url.startswith(live_server.url) for url in requested), requested
    response = page.request.get(f"{live_server.url}/api/docs/")
    assert response.headers["content-security-policy"] == settings.CONTENT_SECURITY_POLICY

"""Small steps the browser tests share."""

from __future__ import annotations

from playwright.sync_api import Locator, Page, expect

ANSWER_TIMEOUT_MS = 10_000


def finished_answers(page: Page) -> Locator:
    """Answers the server has finished: they are drawn from the saved message, and carry its id."""
    return page.locator("#log .answer[data-id]")


def ask(page: Page, question: str) -> None:
    """Type a question, send it with Enter, and wait until its saved answer is on the page."""
    before = finished_answers(page).count()
    page.fill("#question", question)
    page.press("#question", "Enter")
    expect(finished_answers(page)).to_have_count(before + 1, timeout=ANSWER_TIMEOUT_MS)


def owner_key(page: Page) -> str:
    """The hash that owns the anonymous visitor's conversations on the server (from the secret
    kept in their session; the session key itself owns nothing)."""
    from django.contrib.sessions.backends.db import SessionStore

    from chat import ownership

    cookies = {cookie["name"]: cookie["value"] for cookie in page.context.cookies()}
    key = ownership.owner_key(SessionStore(cookies["sessionid"]))
    assert key is not None, "the page load gave this visitor no owner secret"
    return key


def has_horizontal_scroll(page: Page) -> bool:
    return page.evaluate(
        "() => document.documentElement.scrollWidth > window.innerWidth"
        " || document.getElementById('scroller').scrollWidth > document.getElementById('scroller').clientWidth"
    )

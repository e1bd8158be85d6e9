"""Layout and look: narrow phones, keyboard use, error pages, and the README screenshots.

Set MEDBOT_SCREENSHOTS=1 to write docs/screenshot-desktop.png and docs/screenshot-mobile.png."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect

from inference import pipeline
from tests.browser.helpers import ask, has_horizontal_scroll

pytestmark = pytest.mark.browser

DOCS = Path(__file__).resolve().parents[2] / "docs"
LONG_WORD = "supercalifragilistic" * 8


def test_it_fits_a_360px_screen_with_the_history_behind_a_toggle(curated_rules, new_page) -> None:
    page = new_page(width=360, height=740)
    assert not has_horizontal_scroll(page)
    expect(page.locator("#sidebar")).to_be_hidden()
    expect(page.locator("#question")).to_be_visible()

    ask(page, f"How can I ease a tension headache? {LONG_WORD}")
    expect(page.locator("#log .answer .badge")).to_have_text("Curated answer")
    assert not has_horizontal_scroll(page)
    box = page.locator("#question").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 360

    toggle = page.locator("#sidebar-toggle")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    toggle.click()
    expect(page.locator("#sidebar")).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(page.locator("#new-conversation")).to_be_focused()
    expect(page.locator("#history-list .history-item")).to_have_count(1)
    page.keyboard.press("Escape")
    expect(page.locator("#sidebar")).to_be_hidden()
    expect(toggle).to_be_focused()


def test_it_can_be_used_from_the_keyboard_alone(curated_rules, page) -> None:
    page.keyboard.press("Tab")
    expect(page.locator(".skip-link")).to_be_focused()
    page.keyboard.press("Enter")
    for _ in range(12):  # from the skip target, Tab reaches the question box
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.id") == "question":
            break
    expect(page.locator("#question")).to_be_focused()
    outline = page.evaluate("() => getComputedStyle(document.querySelector('.composer')).borderColor")
    assert outline == "rgb(11, 87, 208)"  # the focus colour shows on the composer
    page.keyboard.type("How can I ease a tension headache?")
    page.keyboard.press("Enter")
    expect(page.locator("#log .answer .message-disclaimer")).to_be_visible()

    page.keyboard.press("Shift+Tab")  # back from the box into the answer's controls
    focused = page.evaluate("() => document.activeElement.getAttribute('aria-label')")
    assert focused in {"Helpful", "Not helpful"}
    width = page.evaluate("() => getComputedStyle(document.activeElement).outlineWidth")
    assert width == "3px"


def test_it_shows_a_404_page_in_the_same_look(live_server, new_page) -> None:
    page = new_page(path="/no-such-page/")
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    expect(page.locator(".site-header .brand")).to_be_visible()
    background = page.evaluate("() => getComputedStyle(document.querySelector('.card')).backgroundColor")
    assert background == "rgb(255, 255, 255)"  # the stylesheet loaded
    response = page.request.get(f"{live_server.url}/no-such-page/")
    assert response.status == 404


def test_it_shows_a_500_page_in_the_same_look(new_page, monkeypatch) -> None:
    def broken() -> None:
        raise RuntimeError("a deliberately broken index view")

    monkeypatch.setattr(pipeline.disclaimers, "current", broken)
    page = new_page(path="/")
    expect(page.get_by_role("heading", name="Something went wrong")).to_be_visible()
    expect(page.locator("p.status-code")).to_have_text("500")
    background = page.evaluate("() => getComputedStyle(document.querySelector('.card')).backgroundColor")
    assert background == "rgb(255, 255, 255)"


def test_it_renders_a_conversation_on_desktop_and_phone(curated_rules, new_page, tmp_path) -> None:
    shots = {}
    for name, width, height in (("desktop", 1280, 800), ("mobile", 360, 740)):
        page = new_page(width=width, height=height)
        if name == "desktop":
            ask(page, "What helps with hay fever?")
            page.click("#new-conversation")
            ask(page, "How can I ease a tension headache?")
            ask(page, "What are the warning signs of a stroke?")
        else:
            ask(page, "How can I ease a tension headache?")
            ask(page, "my dad collapsed and is not breathing")
        page.locator("#question").blur()
        page.mouse.move(width - 5, height - 5)  # no hover effects in the picture
        expect(page.locator("#log .answer")).to_have_count(2)
        assert not has_horizontal_scroll(page)
        shots[name] = tmp_path / f"screenshot-{name}.png"
        page.screenshot(path=str(shots[name]))
        assert shots[name].stat().st_size < 200_000
    if os.environ.get("MEDBOT_SCREENSHOTS") == "1":
        for name, path in shots.items():
            shutil.copyfile(path, DOCS / f"screenshot-{name}.png")


def luminance(css_colour: str) -> float:
    """Relative luminance (WCAG) of an ``rgb(r, g, b)`` colour."""
    channels = [int(part) / 255 for part in re.findall(r"\d+", css_colour)[:3]]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_it_follows_the_systems_dark_mode(curated_rules, page) -> None:
    page.emulate_media(color_scheme="dark")
    ask(page, "How can I ease a tension headache?")
    colours = page.evaluate(
        """() => {
            const style = (selector) => getComputedStyle(document.querySelector(selector));
            return {
                page: style('body').backgroundColor,
                text: style('body').color,
                answer: style('#log .answer').backgroundColor,
                answerText: style('#log .answer .message-body').color,
                question: style('#log .question').backgroundColor,
                questionText: style('#log .question').color,
                muted: style('#log .answer .message-disclaimer').color,
            };
        }"""
    )
    assert luminance(colours["page"]) < 0.05 and luminance(colours["answer"]) < 0.05
    assert contrast(colours["text"], colours["page"]) >= 4.5
    assert contrast(colours["answerText"], colours["answer"]) >= 4.5
    assert contrast(colours["questionText"], colours["question"]) >= 4.5
    assert contrast(colours["muted"], colours["answer"]) >= 4.5

    page.emulate_media(color_scheme="light")
    assert page.evaluate("() => getComputedStyle(document.body).backgroundColor") == "rgb(244, 246, 248)"


def test_the_disclaimer_is_shown_once_with_a_short_line_under_each_answer(curated_rules, page) -> None:
    from inference.models import Disclaimer

    disclaimer = Disclaimer.objects.get(active=True).text
    expect(page.locator(".welcome-disclaimer")).to_have_text(disclaimer)  # before the first question
    ask(page, "How can I ease a tension headache?")
    ask(page, "What helps with hay fever?")
    expect(page.locator("#conversation-disclaimer")).to_be_visible()
    expect(page.locator("#conversation-disclaimer")).to_contain_text(disclaimer)
    expect(page.locator("#log .answer .message-disclaimer")).to_have_count(2)
    expect(page.locator("#log .answer .message-disclaimer").first).to_be_visible()
    visible = page.evaluate(
        "(text) => [...document.querySelectorAll('body *')].filter((node) => node.checkVisibility()"
        " && [...node.childNodes].some((child) => child.nodeType === 3 && child.textContent.includes(text))).length",
        disclaimer,
    )
    assert visible == 1


def test_the_chat_is_es_modules_under_the_same_content_security_policy(live_server, page, settings) -> None:
    modules = page.locator('script[type="module"]')
    expect(modules).to_have_count(1)
    assert modules.get_attribute("src").endswith("/medbot/main.js")
    assert page.locator('script[src$="chat.js"]').count() == 0
    expect(page.locator('script[src$="engine-note.js"]')).to_have_count(1)
    response = page.request.get(f"{live_server.url}/")
    assert response.headers["content-security-policy"] == settings.CONTENT_SECURITY_POLICY
    assert "'unsafe-inline'" not in settings.CONTENT_SECURITY_POLICY
    # The modules ran: the history list was asked for and drawn.
    expect(page.locator("#history-empty")).to_have_text("No conversations yet.")

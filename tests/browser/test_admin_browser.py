"""A curator steers MedBot from the admin in a real browser: log in, add a rule, and the chat
answers with it on the next question, without a restart."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from django.contrib.auth.models import Group, User
from playwright.sync_api import Page, expect

from chat.models import Conversation, Feedback, Message
from inference.models import FallbackRule
from tests.browser.helpers import ask, finished_answers

pytestmark = pytest.mark.browser

PASSWORD = "curator-password-1"
ANSWER = "Sip ice-cold water slowly or hold your breath for a few seconds; most hiccups stop on their own."


@pytest.fixture
def curator(settings, rebuild_groups) -> User:
    """A staff user in the Curators group. Live-server tests flush the database between tests,
    which takes the migration's groups with it, so they are made again the way the migration does."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    if not Group.objects.filter(name="Curators").exists():
        rebuild_groups()
    user = User.objects.create_user("carol", password=PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name="Curators"))
    return user


def log_in(new_page: Callable[..., Page], width: int = 1280) -> Page:
    page = new_page(width=width, path="/admin/login/?next=/admin/")
    page.fill("#id_username", "carol")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#site-name")).to_contain_text("MedBot administration")
    return page


def test_the_feedback_list_fits_a_1280_pixel_screen_without_scrolling_sideways(
    curator: User, new_page: Callable[..., Page]
) -> None:
    long_question = "Is it normal that my ear keeps ringing after the concert last weekend " * 4
    for _ in range(3):
        conversation = Conversation.objects.create(owner=curator, title="Ears")
        question = Message.objects.create(conversation=conversation, role="user", content=long_question)
        answer = Message.objects.create(
            conversation=conversation,
            role="assistant",
            content="Ringing in the ears after loud music usually fades within a day or two. " * 6,
            source="extract",
            matched_rule="What are the treatments for Tinnitus and other ringing in the ears?",
            citations=[{"title": "What are the treatments for Tinnitus and other ringing in the ears?", "source": "x"}],
            reply_to=question,
        )
        Feedback.objects.create(message=answer, rating=-1, reason="unclear", comment="Too vague to act on. " * 10)
    page = log_in(new_page)
    page.goto("/admin/chat/feedback/")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(3)
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    # Next to the admin's menu and the filters the list has about 630 pixels: long columns wrap
    # every row into a tower (the old seven columns: 257 pixels a row). A few lines at most.
    heights = [box["height"] for box in (rows.nth(n).bounding_box() for n in range(3)) if box]
    assert max(heights) <= 130


def test_a_rule_added_in_the_admin_answers_the_next_chat_question(
    curated_rules: None, curator: User, new_page: Callable[..., Page]
) -> None:
    page = new_page(path="/admin/login/?next=/admin/")
    page.fill("#id_username", "carol")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#site-name")).to_contain_text("MedBot administration")

    page.goto("/admin/inference/fallbackrule/")
    page.locator("#content-main .object-tools a.addlink").click()
    expect(page).to_have_url(re.compile(r"/admin/inference/fallbackrule/add/$"))
    page.fill("#id_title", "Hiccups")
    page.fill("#id_triggers", "hiccups\nhiccup\ncan't stop hiccuping")
    page.fill("#id_answer", ANSWER)
    page.fill("#id_priority", "2")
    page.click("input[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    assert FallbackRule.objects.filter(title="Hiccups", enabled=True).exists()

    page.goto("/")
    ask(page, "How do I get rid of hiccups?")
    answer = page.locator("#log .answer").last
    expect(answer.locator(".message-body")).to_have_text(ANSWER)
    expect(answer.locator(".badge")).to_have_text("Curated answer")
    expect(finished_answers(page)).to_have_count(1)
    saved = Message.objects.get(role="assistant")
    assert (saved.source, saved.matched_rule) == ("rule", "Hiccups")

"""The history sidebar and everything kept on the server: reloads, rename, delete, export,
feedback, and history that follows the visitor into their account."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from chat.models import Conversation, Feedback, Message
from tests.browser.helpers import ask, owner_key

pytestmark = pytest.mark.browser


def make_conversation(key: str, title: str, question: str, answer: str) -> Conversation:
    conversation = Conversation.objects.create(owner_key_hash=key, title=title)
    Message.objects.create(conversation=conversation, role="user", content=question)
    Message.objects.create(
        conversation=conversation, role="assistant", content=answer, source="rule", disclaimer="Not a diagnosis."
    )
    return conversation


def test_it_keeps_history_across_reloads_newest_first(curated_rules, page) -> None:
    ask(page, "How can I ease a tension headache?")
    page.click("#new-conversation")
    expect(page.locator("#log .message")).to_have_count(0)
    expect(page.locator("#welcome")).to_be_visible()
    ask(page, "What helps with hay fever?")

    page.reload()
    titles = page.locator("#history-list .history-title")
    expect(titles).to_have_text(["What helps with hay fever?", "How can I ease a tension headache?"])
    # The open conversation is remembered (localStorage) and its messages come from the server.
    expect(page.locator("#conversation-title")).to_have_text("What helps with hay fever?")
    expect(page.locator("#log .question .message-body")).to_have_text(["What helps with hay fever?"])
    expect(page.locator("#log .answer .badge")).to_have_text(["Curated answer"])
    expect(page.locator("#history-list [aria-current=page]")).to_contain_text("hay fever")

    titles.nth(1).click()
    expect(page.locator("#conversation-title")).to_have_text("How can I ease a tension headache?")
    expect(page.locator("#conversation-title")).to_be_focused()
    expect(page.locator("#log .question .message-body")).to_have_text(["How can I ease a tension headache?"])


def test_it_searches_renames_exports_and_deletes_conversations(page) -> None:
    key = owner_key(page)
    knee = make_conversation(key, "Knee pain after running", "My knee hurts after runs", "Rest it for a few days.")
    make_conversation(key, "Sleep trouble", "I can't sleep", "Keep a regular bedtime.")
    page.reload()
    expect(page.locator("#history-list .history-item")).to_have_count(2)

    page.fill("#search", "knee")
    expect(page.locator("#history-list .history-title")).to_have_text(["Knee pain after running"])
    page.fill("#search", "zzz")
    expect(page.locator("#history-empty")).to_have_text("No conversations match.")
    page.fill("#search", "")
    expect(page.locator("#history-list .history-item")).to_have_count(2)

    page.get_by_role("button", name="Knee pain after running").click()
    expect(page.locator("#log .answer .message-body")).to_have_text("Rest it for a few days.")

    page.click("#rename-button")
    expect(page.locator("#rename-input")).to_be_focused()
    page.fill("#rename-input", "Runner's knee")
    page.press("#rename-input", "Enter")
    expect(page.locator("#conversation-title")).to_have_text("Runner's knee")
    expect(page.locator("#history-list .history-title").first).to_have_text("Runner's knee")
    expect(page.locator("#rename-button")).to_be_focused()
    knee.refresh_from_db()
    assert knee.title == "Runner's knee"

    page.click("#export-menu summary")
    markdown = page.request.get(page.get_attribute("#export-md", "href"))
    assert markdown.status == 200
    assert "attachment" in markdown.headers["content-disposition"]
    assert "# Runner's knee" in markdown.text()
    exported = page.request.get(page.get_attribute("#export-json", "href")).json()
    assert [m["content"] for m in exported["messages"]] == ["My knee hurts after runs", "Rest it for a few days."]
    page.keyboard.press("Escape")

    page.click("#delete-button")
    dialog = page.locator("#delete-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("“Runner's knee”")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert Conversation.objects.filter(pk=knee.pk).exists()

    page.click("#delete-button")
    dialog.get_by_role("button", name="Delete").click()
    expect(page.locator("#history-list .history-title")).to_have_text(["Sleep trouble"])
    expect(page.locator("#conversation-title")).to_have_text("New conversation")
    expect(page.locator("#log .message")).to_have_count(0)
    assert not Conversation.objects.filter(pk=knee.pk).exists()
    page.reload()
    expect(page.locator("#conversation-title")).to_have_text("New conversation")


def test_it_records_feedback_with_an_optional_reason_and_copies_answers(curated_rules, live_server, page) -> None:
    ask(page, "How can I ease a tension headache?")
    answer = page.locator("#log .answer").last

    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    answer.get_by_role("button", name="Copy").click()
    expect(answer.get_by_role("button", name="Copied")).to_be_visible()
    copied = page.evaluate("() => navigator.clipboard.readText()")
    saved = Message.objects.get(role="assistant")
    assert copied == f"{saved.content}\n\n{saved.disclaimer}"

    answer.get_by_role("button", name="Not helpful").click()
    reason = answer.get_by_label("Reason")
    expect(reason).to_be_focused()
    reason.select_option("unclear")
    answer.get_by_label("Comment").fill("Too long for me.")
    answer.get_by_role("button", name="Send feedback").click()
    expect(answer.locator(".feedback-thanks")).to_have_text("Thanks for your feedback")
    expect(answer.get_by_role("button", name="Not helpful")).to_have_attribute("aria-pressed", "true")
    expect(answer.get_by_role("button", name="Helpful", exact=True)).to_be_disabled()

    feedback = Feedback.objects.get()
    assert (feedback.rating, feedback.reason, feedback.comment) == (-1, "unclear", "Too long for me.")
    assert feedback.message == saved

    ask(page, "What helps with hay fever?")
    second = page.locator("#log .answer").last
    second.get_by_role("button", name="Helpful", exact=True).click()
    expect(second.locator(".feedback-thanks")).to_have_text("Thanks for your feedback")
    assert Feedback.objects.filter(rating=1, message__content__icontains="hay fever").count() == 1

    page.reload()  # the ratings shown are remembered in this browser
    expect(page.locator("#log .answer .feedback-thanks")).to_have_text(["Thanks for your feedback"] * 2)


def test_it_moves_anonymous_history_into_the_account_at_login(curated_rules, alice, page) -> None:
    ask(page, "What helps with hay fever?")

    page.locator(".account-nav").get_by_role("link", name="Log in").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("alice-password-1")
    page.get_by_role("button", name="Log in").click()

    expect(page.locator(".who")).to_have_text("alice")
    expect(page.locator("#history-list .history-title")).to_have_text(["What helps with hay fever?"])
    expect(page.locator("#log .question .message-body")).to_have_text(["What helps with hay fever?"])
    assert Conversation.objects.get().owner == alice


def test_each_conversation_has_an_address_that_works_with_back_forward_and_reload(
    curated_rules, page, new_page, live_server
) -> None:
    ask(page, "How can I ease a tension headache?")
    headache = Conversation.objects.get()
    expect(page).to_have_url(f"{live_server.url}/c/{headache.pk}")
    page.click("#new-conversation")
    expect(page).to_have_url(f"{live_server.url}/")
    ask(page, "What helps with hay fever?")
    hay_fever = Conversation.objects.exclude(pk=headache.pk).get()
    expect(page).to_have_url(f"{live_server.url}/c/{hay_fever.pk}")

    page.go_back()
    expect(page).to_have_url(f"{live_server.url}/")
    expect(page.locator("#conversation-title")).to_have_text("New conversation")
    expect(page.locator("#log .message")).to_have_count(0)
    page.go_back()
    expect(page).to_have_url(f"{live_server.url}/c/{headache.pk}")
    expect(page.locator("#conversation-title")).to_have_text("How can I ease a tension headache?")
    expect(page.locator("#log .question .message-body")).to_have_text(["How can I ease a tension headache?"])
    page.go_forward()
    page.go_forward()
    expect(page).to_have_url(f"{live_server.url}/c/{hay_fever.pk}")
    expect(page.locator("#log .question .message-body")).to_have_text(["What helps with hay fever?"])

    page.get_by_role("button", name="How can I ease a tension headache?").click()
    expect(page).to_have_url(f"{live_server.url}/c/{headache.pk}")
    page.reload()
    expect(page.locator("#conversation-title")).to_have_text("How can I ease a tension headache?")
    expect(page.locator("#log .answer .badge")).to_have_text(["Curated answer"])
    expect(page.locator("#history-list [aria-current=page]")).to_contain_text("tension headache")

    # Someone else's browser: the address is not theirs, so it does not exist.
    stranger = new_page(path=f"/c/{headache.pk}")
    expect(stranger.get_by_role("heading", name="Page not found")).to_be_visible()
    assert stranger.request.get(f"{live_server.url}/c/{headache.pk}").status == 404


def test_it_searches_what_was_said_not_only_titles(page, bob) -> None:
    key = owner_key(page)
    make_conversation(key, "Sleep trouble", "I can't sleep", "Keep a regular bedtime.")
    make_conversation(key, "Knee pain after running", "My knee hurts after runs", "Rest it for a few days.")
    others = Conversation.objects.create(owner=bob, title="Bob's bedtime")
    Message.objects.create(conversation=others, role="user", content="What bedtime is best?")
    page.reload()
    expect(page.locator("#history-list .history-item")).to_have_count(2)

    page.fill("#search", "bedtime")  # only in an answer
    expect(page.locator("#history-list .history-title")).to_have_text(["Sleep trouble"])
    page.fill("#search", "knee runs")  # words of the title and of the question
    expect(page.locator("#history-list .history-title")).to_have_text(["Knee pain after running"])


def test_each_message_shows_its_time(curated_rules, page) -> None:
    ask(page, "How can I ease a tension headache?")
    saved = {m.role: m for m in Message.objects.all()}
    times = page.locator("#log .message time.message-time")
    expect(times).to_have_count(2)
    for index, role in enumerate(["user", "assistant"]):
        shown = times.nth(index).get_attribute("datetime")
        assert page.evaluate(
            "([a, b]) => new Date(a).getTime() === new Date(b).getTime()", [shown, saved[role].created_at.isoformat()]
        )
        expect(times.nth(index)).to_have_text(re.compile(r"\d{1,2}[:.]\d{2}"))

    page.reload()  # the history path shows the same times
    expect(page.locator("#log .message time.message-time")).to_have_count(2)

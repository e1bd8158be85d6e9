"""The browser chat: asking, streaming, stopping, errors, emergency answers, untrusted text."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from chat.models import Message
from inference.models import FallbackRule
from tests.browser.helpers import ask, finished_answers

pytestmark = pytest.mark.browser

# Where the chat sends a question: /ask starts a conversation with it, later ones go to the conversation.
ASK_URL = re.compile(r"/api/v1/(ask|conversations/\d+/messages/)$")

COLD_PIECES = [
    # Faithful to the curated "Common cold" entry, so the faithfulness gate lets it through.
    "Rest and plenty of fluids help with a cold. ",
    "Symptoms usually improve within a week to ten days. ",
    "Paracetamol can ease aches and a high temper",  # unfinished: the server trims it away
]


def test_it_streams_a_model_answer_piece_by_piece_then_shows_the_saved_text(curated_rules, page, fake_model) -> None:
    fake = fake_model(COLD_PIECES, hold_before=(0, 1))
    page.fill("#question", "How do I look after a cold at home?")
    page.press("#question", "Enter")

    answer = page.locator("#log .answer").last
    expect(answer.locator(".typing")).to_be_visible()
    expect(page.locator("#stop")).to_be_visible()
    expect(page.locator("#question")).to_have_value("")

    fake.release()  # the first piece arrives; the rest of the answer is still being written
    expect(answer.locator(".message-body")).to_have_text(COLD_PIECES[0].strip())
    expect(answer.locator(".typing")).to_have_count(0)
    expect(answer).to_have_attribute("aria-busy", "true")
    expect(answer.locator(".message-disclaimer")).to_have_count(0)

    fake.release()
    expect(answer.locator(".message-disclaimer")).to_be_visible()
    # It points to the full note, which scrolls out of sight once there are a few answers.
    expect(answer.locator(".message-disclaimer a")).to_have_attribute("href", "#conversation-disclaimer")
    expect(answer.locator(".badge")).to_have_text("AI answer")
    expect(answer.locator(".message-body")).to_contain_text("a week to ten days.")
    # The saved message wins over the streamed pieces: the server trimmed the unfinished sentence.
    expect(answer.locator(".message-body")).not_to_contain_text("high temper")
    expect(page.locator("#stop")).to_be_hidden()
    expect(page.locator("#conversation-title")).to_have_text("How do I look after a cold at home?")

    saved = Message.objects.get(role="assistant")
    assert saved.source == "model"
    assert saved.adapter_version == "test-adapter"
    assert "high temper" not in saved.content
    # The saved disclaimer, whole, once at the top of the conversation; a short line under the answer.
    assert page.locator("#conversation-disclaimer .conversation-disclaimer-text").inner_text() == saved.disclaimer
    assert saved.disclaimer not in answer.inner_text()


def test_it_counts_characters_and_sends_only_on_enter_without_shift(curated_rules, page) -> None:
    box = page.locator("#question")
    box.fill("Headache")
    expect(page.locator("#char-count")).to_have_text("8 / 2000")
    box.press("Shift+Enter")
    box.press_sequentially("after a long day")
    expect(box).to_have_value("Headache\nafter a long day")
    expect(page.locator("#log .question")).to_have_count(0)

    box.fill("x" * 2001)
    expect(page.locator("#char-count")).to_contain_text("2001 / 2000")
    expect(box).to_have_attribute("aria-invalid", "true")
    box.press("Enter")
    expect(page.locator("#notice")).to_contain_text("too long")
    expect(box).to_have_value("x" * 2001)
    assert not Message.objects.exists()


def test_it_stops_a_streaming_answer_and_keeps_what_arrived(curated_rules, page, fake_model) -> None:
    fake = fake_model(COLD_PIECES, hold_before=(1,))
    page.fill("#question", "How do I look after a cold at home?")
    page.press("#question", "Enter")
    answer = page.locator("#log .answer").last
    expect(answer.locator(".message-body")).to_contain_text("Rest and plenty of fluids")

    page.click("#stop")
    expect(answer.locator(".message-note")).to_have_text("You stopped this answer before it finished.")
    expect(answer.locator(".message-body")).to_contain_text("Rest and plenty of fluids")
    expect(answer.get_by_role("button", name="Try again")).to_be_visible()
    expect(page.locator("#stop")).to_be_hidden()
    expect(page.locator("#send")).to_be_visible()
    expect(page.locator("#question")).to_be_focused()

    fake.release()  # let the server notice the closed connection and settle before teardown
    assert fake.finished.wait(10)
    deadline = time.monotonic() + 5
    while not Message.objects.filter(role="assistant").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    # The question was kept, and what the model wrote was saved (partial, if the server noticed
    # the closed connection before the end).
    assert Message.objects.filter(role="user", content="How do I look after a cold at home?").exists()
    assert Message.objects.get(role="assistant").content.startswith("Rest and plenty of fluids")


def test_it_explains_a_rate_limit_with_the_wait_and_keeps_the_question(curated_rules, page, settings) -> None:
    # A day-long window: django-ratelimit's windows end at a per-key point within the period, so a
    # short one could expire mid-test.
    settings.MEDBOT_RATE_LIMIT = "1/d"
    ask(page, "How can I ease a tension headache?")

    page.fill("#question", "What helps with hay fever?")
    page.press("#question", "Enter")
    notice = page.locator("#notice")
    expect(notice).to_contain_text(re.compile(r"You're asking too quickly\. Please wait \d+ seconds?, then try"))
    expect(page.locator("#question")).to_have_value("What helps with hay fever?")
    expect(page.locator("#send")).to_be_disabled()
    expect(page.locator("#send")).to_contain_text("Wait")
    expect(page.locator("#log .question")).to_have_count(1)
    assert Message.objects.filter(role="user").count() == 1


def test_it_keeps_the_question_when_offline_or_when_the_server_fails(curated_rules, page) -> None:
    page.context.set_offline(True)
    page.fill("#question", "What helps with hay fever?")
    page.press("#question", "Enter")
    expect(page.locator("#notice")).to_contain_text("offline")
    expect(page.locator("#question")).to_have_value("What helps with hay fever?")
    expect(page.locator("#log .question")).to_have_count(0)

    page.context.set_offline(False)
    page.route(
        ASK_URL,
        lambda route: route.fulfill(
            status=503, content_type="application/json", body='{"detail": "MedBot\'s database is unavailable."}'
        ),
    )
    page.press("#question", "Enter")
    expect(page.locator("#notice")).to_contain_text("MedBot's database is unavailable.")
    expect(page.locator("#notice")).to_contain_text("Your question is still in the box.")
    expect(page.locator("#question")).to_have_value("What helps with hay fever?")

    page.unroute(ASK_URL)
    page.press("#question", "Enter")
    expect(finished_answers(page)).to_have_count(1)
    expect(page.locator("#notice")).to_be_empty()
    expect(page.locator("#log .answer .badge")).to_have_text("Curated answer")


def test_it_labels_each_answer_with_where_it_came_from(curated_rules, page) -> None:
    ask(page, "How can I ease a tension headache?")
    ask(page, "xyzzy plugh frobnicate")
    ask(page, "thanks, that helped")  # MedBot's own reply: no answer was asked for, so none is missing
    badges = page.locator("#log .answer .badge")
    expect(badges).to_have_text(["Curated answer", "No reliable answer", "MedBot"])
    expect(page.locator("#log .answer .topic").first).to_have_text("Headache")
    assert (
        list(Message.objects.filter(role="assistant").values_list("source", flat=True))
        == ["rule"] + ["unavailable"] * 2
    )
    page.reload()  # drawn from the saved messages the same way
    expect(page.locator("#log .answer .badge")).to_have_text(["Curated answer", "No reliable answer", "MedBot"])


def test_an_urgent_question_without_sources_is_labelled_urgent_not_unanswered(curated_rules, page, monkeypatch) -> None:
    monkeypatch.setattr("inference.pipeline.find_passages", lambda question, history=(): [])
    ask(page, "my calf is hot and swollen since my long flight yesterday")
    answer = page.locator("#log .answer").last
    expect(answer.locator(".badge")).to_have_text("Urgent advice")
    expect(answer.locator(".urgent-banner")).to_contain_text("Urgent. See a doctor")
    expect(answer.locator(".message-body")).to_contain_text("Follow the advice above.")


def test_it_shows_an_emergency_answer_as_an_alert_with_the_number_first(curated_rules, page) -> None:
    ask(page, "my dad collapsed and is not breathing")

    answer = page.locator("#log .answer").last
    expect(answer).to_have_attribute("role", "alert")
    expect(answer).to_have_class("message answer source-emergency")
    expect(answer.locator(".badge")).to_have_text("Emergency")
    # "Call 911 now" once, loud and first: the rule's text opens with it, so that sentence is the line.
    expect(answer.locator(".call-line .call-now")).to_have_text("Call 911 now")
    expect(answer.locator(".call-line")).to_have_text("Call 911 now and put the phone on speaker.")
    expect(answer.locator(".call-line a")).to_have_attribute("href", "tel:911")
    expect(answer.locator(".message-body")).to_contain_text("start CPR")
    assert answer.inner_text().count("Call 911 now") == 1
    first_line = answer.evaluate("node => node.querySelector('.message-head').nextElementSibling.className")
    assert first_line == "call-line"
    border = answer.evaluate("node => getComputedStyle(node).borderLeftWidth")
    assert float(border.removesuffix("px")) >= 6
    assert Message.objects.get(role="assistant").source == "emergency"


def test_a_self_harm_answer_leads_with_the_crisis_line_and_keeps_the_emergency_number(curated_rules, page) -> None:
    ask(page, "i dont want to be alive anymore")

    answer = page.locator("#log .answer").last
    expect(answer).to_have_attribute("role", "alert")
    expect(answer.locator(".call-line .call-now")).to_have_text("Call or text 988 now")
    expect(answer.locator(".call-line a")).to_have_attribute("href", "tel:988")
    expect(answer.locator(".message-body")).to_contain_text("call or text 988")
    expect(answer.locator(".message-body")).to_contain_text("or call 911 if you are in immediate danger")
    assert "Call 911 now" not in answer.inner_text()


def test_it_shows_curated_html_as_literal_text_and_never_runs_it(curated_rules, page) -> None:
    payload = '<img src=x onerror="window.__pwned=1"> <script>window.__pwned=2</script>'
    FallbackRule.objects.create(
        title="Quokkapox",
        triggers="quokkapox\nquokka pox",
        answer=f"Quokkapox is a made-up illness. {payload} Rest and drink fluids.",
    )
    question = "<b>What</b> is quokkapox?"
    ask(page, question)

    answer = page.locator("#log .answer").last
    expect(answer.locator(".badge")).to_have_text("Curated answer")
    expect(answer.locator(".message-body")).to_contain_text(payload)
    expect(page.locator("#log .question .message-body").last).to_have_text(question)
    assert page.locator("#log img, #log script, #log b").count() == 0
    assert page.evaluate("() => window.__pwned") is None

    page.reload()  # the history path renders the same text
    expect(page.locator("#log .answer .message-body")).to_contain_text(payload)
    expect(page.locator("#history-list .history-title")).to_have_text(question)
    assert page.locator("#log img, #log script, #log b, #history-list b").count() == 0
    assert page.evaluate("() => window.__pwned") is None


def test_an_answer_from_the_knowledge_base_shows_its_sources_as_links(curated_rules, knowledge_base, page) -> None:
    from knowledge.models import Passage

    # A hostile address never becomes a link; a title is text, never markup.
    Passage.objects.filter(external_id="gout-1").update(url="javascript:alert(1)", title="<b>What is gout?</b>")
    ask(page, "How is gout treated?")
    answer = page.locator("#log .answer:not(.pending)").last
    expect(answer.locator(".badge")).to_have_text("From trusted sources")
    expect(answer.locator(".message-body")).to_contain_text("colchicine")
    link = answer.locator(".citations a")
    expect(link).to_have_text("How is gout treated?")
    expect(link).to_have_attribute("href", "https://clinic.example/gout-2")
    expect(answer.locator(".citations li")).to_contain_text("(Test Clinic)")
    saved = Message.objects.get(role="assistant")
    assert saved.source == "extract"
    assert saved.citations[0]["url"] == "https://clinic.example/gout-2"

    ask(page, "What is gout?")
    second = page.locator("#log .answer:not(.pending)").last
    expect(second.locator(".citations li").first).to_contain_text("<b>What is gout?</b>")
    expect(second.locator(".citations a")).to_have_count(0)


def test_it_says_what_it_is_doing_while_the_answer_is_prepared_and_names_the_conversation_at_once(
    curated_rules, page, fake_model, monkeypatch
) -> None:
    import threading

    from inference import pipeline

    fake = fake_model(COLD_PIECES, hold_before=(0, 1))
    # The knowledge search waits until the test has seen its stage (the live server is a thread here).
    searched = threading.Event()
    find_passages = pipeline.find_passages

    def held_search(question, history=()):
        searched.wait(10)
        return find_passages(question, history)

    monkeypatch.setattr(pipeline, "find_passages", held_search)
    try:
        # Every stage the answer shows, in order, as the page draws it.
        page.evaluate(
            """() => {
                window.__stages = [];
                new MutationObserver(() => {
                    const stage = document.querySelector('#log .answer-stage');
                    const text = stage ? stage.textContent : null;
                    if (text && window.__stages[window.__stages.length - 1] !== text) window.__stages.push(text);
                }).observe(document.getElementById('log'), {subtree: true, childList: true, characterData: true});
            }"""
        )
        question = "How do I look after a cold at home?"
        page.fill("#question", question)
        page.press("#question", "Enter")
        answer = page.locator("#log .answer").last
        expect(answer.locator(".answer-stage")).to_have_text("Looking up trusted sources…")
        # The model has not written a word, and the conversation already has its title and its place.
        expect(page.locator("#history-list .history-title")).to_have_text([question])
        expect(page.locator("#history-list [aria-current=page]")).to_have_text(re.compile("look after a cold"))
        expect(page.locator("#conversation-title")).to_have_text(question)

        searched.set()  # the server says when the model starts, before its first word
        expect(answer.locator(".answer-stage")).to_have_text("Writing…")
        fake.release()
        expect(answer.locator(".message-body")).to_have_text(COLD_PIECES[0].strip())
        expect(answer.locator(".answer-stage")).to_have_text("Writing…")
        fake.release()
        expect(finished_answers(page)).to_have_count(1)
        expect(answer.locator(".answer-stage")).to_have_count(0)
        assert page.evaluate("() => window.__stages") == [
            "Checking for emergencies…",
            "Looking up trusted sources…",
            "Writing…",
        ]
    finally:
        searched.set()  # a failed check must not leave a server thread waiting into the next test


def test_a_question_asked_before_the_history_has_loaded_stays_in_the_list(curated_rules, new_page, fake_model) -> None:
    # The page's own first request for the list is answered only after the question was saved,
    # with the list as the server had it when asked: an earlier conversation, not this one. (A
    # slow first load once took the new conversation off the list until the answer ended.)
    page = new_page(path="about:blank")
    held = []
    page.route(re.compile(r"/conversations/\?"), lambda route: held.append(route) if not held else route.continue_())
    page.goto("/")
    deadline = time.monotonic() + 10
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(50)  # lets Playwright run the route handler
    assert held, "the page never asked for its conversations"
    fake = fake_model(COLD_PIECES, hold_before=(0,))
    question = "How do I look after a cold at home?"
    page.fill("#question", question)
    page.press("#question", "Enter")
    expect(page.locator("#conversation-title")).to_have_text(question)
    expect(page.locator("#history-list .history-title")).to_have_text([question])

    earlier = {"id": 10**6, "title": "An earlier conversation", "updated_at": "2026-01-05T10:00:00Z"}
    held[0].fulfill(json={"count": 1, "next": None, "previous": None, "results": [earlier]})
    expect(page.locator("#history-list .history-title")).to_have_text([question, earlier["title"]])
    expect(page.locator("#history-list [aria-current=page]")).to_have_count(1)
    fake.release()
    expect(finished_answers(page)).to_have_count(1)
    # The list is the server's again, which knows the conversation now.
    expect(page.locator("#history-list .history-title")).to_have_text([question])


def test_stopping_before_the_first_word_keeps_the_question_and_offers_to_try_again(
    curated_rules, page, fake_model
) -> None:
    from chat.models import Conversation

    fake = fake_model(COLD_PIECES, hold_before=(0,))
    question = "How do I look after a cold at home?"
    page.fill("#question", question)
    page.press("#question", "Enter")
    answer = page.locator("#log .answer").last
    expect(page.locator("#conversation-title")).to_have_text(question)  # the server has the question
    page.click("#stop")

    expect(page.locator("#log .question .message-body")).to_have_text([question])
    expect(answer.locator(".message-note")).to_have_text("You stopped this answer before it started.")
    expect(page.locator("#stop")).to_be_hidden()

    # The server notices the stop at its next event (the model may never have been asked);
    # permits for a started model, and for the next answer, so nothing waits.
    fake.release(2)
    deadline = time.monotonic() + 10
    while Conversation.objects.filter(answering_since__isnull=False).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    answer.get_by_role("button", name="Try again").click()
    expect(finished_answers(page)).to_have_count(1)
    expect(page.locator("#log .question .message-body")).to_have_text([question, question])
    assert Message.objects.filter(role="user", content=question).count() == 2
    assert Conversation.objects.count() == 1


def test_an_answer_cut_off_by_the_server_says_so_keeps_its_text_and_can_be_asked_again(curated_rules, page) -> None:
    def cut_before_done(route) -> None:
        # The server died mid-answer: the stream ends after the first events, without "done".
        response = route.fetch()
        body = response.text()
        route.fulfill(response=response, body=body[: body.index("event: done")])

    # And nothing else answers either (the history list would fail to load).
    page.route(re.compile(r"/api/v1/conversations/(\?.*)?$"), lambda route: route.abort())
    page.route(ASK_URL, cut_before_done)
    page.fill("#question", "How can I ease a tension headache?")
    page.press("#question", "Enter")

    answer = page.locator("#log .answer").last
    expect(answer.locator(".message-note")).to_have_text(
        "The answer was interrupted: the connection to MedBot was lost. The part that arrived is kept above."
    )
    expect(answer.locator(".message-body")).not_to_be_empty()
    expect(page.locator("#log .question .message-body")).to_have_text(["How can I ease a tension headache?"])
    expect(page.locator("#notice")).to_be_empty()  # no message about the history under the answer

    page.unroute(ASK_URL)
    page.unroute(re.compile(r"/api/v1/conversations/(\?.*)?$"))
    answer.get_by_role("button", name="Try again").click()
    expect(finished_answers(page)).to_have_count(1)
    expect(page.locator("#log .answer .badge")).to_have_text(["Curated answer"])
    assert Message.objects.filter(role="user", content="How can I ease a tension headache?").count() == 2


def test_a_refused_first_question_leaves_no_empty_conversation(curated_rules, page, settings) -> None:
    from chat.models import Conversation

    settings.MEDBOT_RATE_LIMIT = "1/d"
    ask(page, "How can I ease a tension headache?")
    page.click("#new-conversation")
    page.fill("#question", "What helps with hay fever?")
    page.press("#question", "Enter")
    expect(page.locator("#notice")).to_contain_text("You're asking too quickly")
    assert Conversation.objects.count() == 1
    page.reload()
    expect(page.locator("#history-list .history-title")).to_have_text(["How can I ease a tension headache?"])


def test_answers_are_announced_once_complete_not_piece_by_piece(curated_rules, page, fake_model) -> None:
    fake = fake_model(COLD_PIECES, hold_before=(1, 2))
    # Every change inside a live region (where a screen reader would speak it) is recorded.
    page.evaluate(
        """() => {
            window.__spoken = [];
            const live = '[aria-live]:not([aria-live=off]), [role=log], [role=status], [role=alert]';
            new MutationObserver((records) => {
                for (const record of records) {
                    const node = record.target.nodeType === 1 ? record.target : record.target.parentElement;
                    const region = node && node.closest(live);
                    if (region) window.__spoken.push(region.textContent);
                }
            }).observe(document.body, {subtree: true, childList: true, characterData: true});
        }"""
    )
    page.fill("#question", "How do I look after a cold at home?")
    page.press("#question", "Enter")
    answer = page.locator("#log .answer").last
    expect(answer.locator(".message-body")).to_have_text(COLD_PIECES[0].strip())
    fake.release()
    expect(answer.locator(".message-body")).to_contain_text("a week to ten days")
    assert not [text for text in page.evaluate("() => window.__spoken") if "fluids" in text]
    fake.release()
    expect(finished_answers(page)).to_have_count(1)

    saved = Message.objects.get(role="assistant")
    expect(page.locator("#status")).to_have_text(f"MedBot answered (AI answer): {saved.content}")
    spoken = [text for text in page.evaluate("() => window.__spoken") if "fluids" in text]
    assert set(spoken) == {f"MedBot answered (AI answer): {saved.content}"}


def test_answers_are_drawn_with_safe_markdown(curated_rules, page, fake_model) -> None:
    FallbackRule.objects.create(
        title="Quokkapox",
        triggers="quokkapox",
        answer=(
            "**Quokkapox** is a made-up illness.\n\n"
            "What helps:\n- Rest\n- Drink *plenty* of fluids\n\n"
            "Read [the leaflet](https://clinic.example/quokkapox), not [this](javascript:alert(1)), "
            "or https://clinic.example/more."
        ),
    )
    ask(page, "What is quokkapox?")
    body = page.locator("#log .answer").last.locator(".message-body")
    expect(body.locator("strong")).to_have_text("Quokkapox")
    expect(body.locator("em")).to_have_text("plenty")
    expect(body.locator("ul li")).to_have_text(["Rest", "Drink plenty of fluids"])
    links = body.locator("a")
    expect(links).to_have_text(["the leaflet", "https://clinic.example/more"])
    assert [links.nth(i).get_attribute("href") for i in range(2)] == [
        "https://clinic.example/quokkapox",
        "https://clinic.example/more",
    ]
    assert links.first.get_attribute("rel") == "noopener noreferrer nofollow"
    expect(body).to_contain_text("not this, or")  # a javascript: link keeps its words, and is no link
    assert "**" not in body.inner_text()

    # The model's words too, as they stream.
    fake = fake_model(["**Rest** and plenty of fluids help with a cold. ", "Symptoms improve within a week."], (1,))
    page.fill("#question", "How do I look after a cold at home?")
    page.press("#question", "Enter")
    streaming = page.locator("#log .answer").last
    expect(streaming.locator(".message-body strong")).to_have_text("Rest")
    fake.release()
    expect(finished_answers(page)).to_have_count(2)

"""Conversations and messages: ownership, CRUD, export, SSE streaming, never losing a question."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from chat import api, services
from chat.models import Conversation, Feedback, Message
from inference import pipeline
from training.models import TrainingExample


@pytest.fixture
def alices(alice):
    conversation = Conversation.objects.create(owner=alice, title="Asthma questions")
    Message.objects.create(conversation=conversation, role="user", content="What is asthma?")
    Message.objects.create(
        conversation=conversation, role="assistant", content="A condition of the airways.", source="rule"
    )
    return conversation


def test_owners_list_only_their_conversations_newest_first(client_for, alice, bob, alices):
    Conversation.objects.create(owner=bob, title="Bob's")
    newer = Conversation.objects.create(owner=alice, title="Sleep")
    body = client_for(alice).get("/api/v1/conversations/").json()
    assert [c["id"] for c in body["results"]] == [newer.pk, alices.pk]
    assert body["count"] == 2


def test_the_list_searches_titles(client_for, alice, alices):
    Conversation.objects.create(owner=alice, title="Sleep trouble")
    body = client_for(alice).get("/api/v1/conversations/?search=asthma").json()
    assert [c["title"] for c in body["results"]] == ["Asthma questions"]


def test_a_search_of_hundreds_of_words_uses_the_first_few_distinct_ones(client_for, alice, alices):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    words = "+".join(["asthma"] + ["a"] * 300 + [f"w{i}" for i in range(300)])
    with CaptureQueriesContext(connection) as queries:
        response = client_for(alice).get(f"/api/v1/conversations/?search={words}")
    assert response.status_code == 200
    assert response.json()["count"] == 0  # "w0".."w5" are in no title
    # Two fields per word: 8 words make 16 LIKEs in the biggest query, not 1,200.
    assert max(q["sql"].upper().count("LIKE") for q in queries.captured_queries) == 16
    only = client_for(alice).get("/api/v1/conversations/?search=asthma+a+a+a+a+a+a+a+a+a+a").json()
    assert [c["title"] for c in only["results"]] == ["Asthma questions"]  # repeats count once


def test_the_list_searches_message_text_of_the_owners_conversations_only(client_for, alice, bob, alices):
    sleep = Conversation.objects.create(owner=alice, title="Sleep trouble")
    Message.objects.create(conversation=sleep, role="user", content="Why do I wake at 4am?")
    Message.objects.create(conversation=sleep, role="assistant", content="Alcohol and stress can wake you.")
    bobs = Conversation.objects.create(owner=bob, title="Bob's")
    Message.objects.create(conversation=bobs, role="user", content="Airways and alcohol?")
    client = client_for(alice)

    def found(search: str) -> list[str]:
        body = client.get("/api/v1/conversations/", {"search": search}).json()
        assert body["count"] == len(body["results"])
        return [c["title"] for c in body["results"]]

    assert found("airways") == ["Asthma questions"]  # in an answer only
    assert found("wake") == ["Sleep trouble"]  # in a question and an answer: listed once
    assert found("alcohol") == ["Sleep trouble"]  # never someone else's
    assert found("sleep alcohol") == ["Sleep trouble"]  # a title word and a message word
    assert found("asthma alcohol") == []
    assert found("4am stress") == ["Sleep trouble"]  # words from two different messages


def test_the_detail_includes_messages_in_order(client_for, alice, alices):
    response = client_for(alice).get(f"/api/v1/conversations/{alices.pk}/")
    assert response.status_code == 200
    assert [m["role"] for m in response.json()["messages"]] == ["user", "assistant"]
    assert response["Cache-Control"] == "no-store"


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_another_owners_conversation_is_a_404(client_for, bob, alices, method):
    client = client_for(bob)
    response = getattr(client, method)(f"/api/v1/conversations/{alices.pk}/", {"title": "x"}, format="json")
    assert response.status_code == 404
    alices.refresh_from_db()
    assert alices.title == "Asthma questions"


@pytest.mark.parametrize(
    "path", ["/api/v1/conversations/{pk}/messages/", "/api/v1/conversations/{pk}/export?format=md"]
)
def test_another_owners_messages_and_exports_are_404s(client_for, bob, alices, path):
    assert client_for(bob).get(path.format(pk=alices.pk)).status_code == 404


def test_anonymous_visitors_see_only_their_sessions_conversations(client, alices):
    client.get("/")  # gets a session
    assert client.get("/api/v1/conversations/").json()["count"] == 0
    assert client.get(f"/api/v1/conversations/{alices.pk}/").status_code == 404
    created = client.post("/api/v1/conversations/", {}, content_type="application/json")
    assert created.status_code == 201
    assert client.get("/api/v1/conversations/").json()["count"] == 1


def test_rename_and_delete(client_for, alice, alices):
    client = client_for(alice)
    response = client.patch(f"/api/v1/conversations/{alices.pk}/", {"title": "  Renamed\x00 "}, format="json")
    assert response.status_code == 400  # NUL refused
    response = client.patch(f"/api/v1/conversations/{alices.pk}/", {"title": "  Renamed  "}, format="json")
    assert response.status_code == 200
    alices.refresh_from_db()
    assert alices.title == "Renamed"
    assert client.delete(f"/api/v1/conversations/{alices.pk}/").status_code == 204
    assert not Conversation.objects.filter(pk=alices.pk).exists()
    assert not Message.objects.filter(conversation_id=alices.pk).exists()


def test_export_as_markdown_and_json(client_for, alice, alices):
    client = client_for(alice)
    md = client.get(f"/api/v1/conversations/{alices.pk}/export?format=md")
    assert md.status_code == 200
    assert md["Content-Type"].startswith("text/markdown")
    assert 'filename="asthma-questions.md"' in md["Content-Disposition"]
    assert "What is asthma?" in md.content.decode()
    js = client.get(f"/api/v1/conversations/{alices.pk}/export?format=json")
    assert js.json()["messages"][1]["content"] == "A condition of the airways."
    assert client.get(f"/api/v1/conversations/{alices.pk}/export?format=pdf").status_code == 400


def test_posting_a_message_returns_the_saved_answer(curated_data, client_for, alice, alices):
    response = client_for(alice).post(
        f"/api/v1/conversations/{alices.pk}/messages/", {"content": "how do I use an inhaler?"}, format="json"
    )
    assert response.status_code == 201
    body = response.json()
    assert body["role"] == "assistant"
    assert body["source"] in {"rule", "unavailable"}
    assert body["disclaimer"]
    assert Message.objects.get(pk=body["id"]).content == body["content"]
    assert alices.messages.count() == 4


def test_message_list_is_paginated_oldest_first(client_for, alice, alices):
    body = client_for(alice).get(f"/api/v1/conversations/{alices.pk}/messages/").json()
    assert [m["content"] for m in body["results"]] == ["What is asthma?", "A condition of the airways."]


def parse_sse(raw: bytes) -> list[tuple[str, dict]]:
    events = []
    for block in raw.decode().strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_answers_stream_as_server_sent_events_ending_with_the_saved_message(curated_data, client_for, alice, alices):
    response = client_for(alice).post(
        f"/api/v1/conversations/{alices.pk}/messages/",
        {"content": "What are the symptoms of asthma?"},
        format="json",
        HTTP_ACCEPT="text/event-stream",
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    assert response["Cache-Control"] == "no-store"
    events = parse_sse(b"".join(response.streaming_content))
    name, status = events[0]
    assert name == "status" and status["stage"] == "received"
    assert status["conversation"]["id"] == alices.pk and status["conversation"]["title"] == "Asthma questions"
    question = Message.objects.get(pk=status["question"]["id"])
    assert question.role == "user" and question.content == "What are the symptoms of asthma?"
    # The server's own steps come next: searching the knowledge (no model here, so no "writing").
    assert events[1] == ("status", {"stage": "sources"})
    assert [name for name, _ in events[2:-1]] == ["piece"] * (len(events) - 3)
    name, final = events[-1]
    assert name == "done"
    saved = Message.objects.get(pk=final["id"])
    assert saved.role == "assistant" and saved.content == final["content"] and saved.reply_to == question
    assert final["source"] == "rule" and final["disclaimer"]
    assert "".join(data["text"] for _, data in events[2:-1]) == final["content"]


class FakeEngine:
    """Stands in for the model at the engine seam: streams a few pieces."""

    version = "fake-1"

    def __init__(self, pieces: list[str], fail_after: int | None = None) -> None:
        self.pieces = pieces
        self.fail_after = fail_after

    def stream(self, request, stats):
        for index, piece in enumerate(self.pieces):
            if self.fail_after is not None and index == self.fail_after:
                raise RuntimeError("the model process died")
            stats.tokens += 1
            yield piece
        stats.stopped_by = "eos"


@pytest.fixture
def fake_engine(monkeypatch):
    def install(engine: FakeEngine) -> FakeEngine:
        monkeypatch.setattr(pipeline.get_manager(), "get", lambda: engine)
        return engine

    return install


def test_model_pieces_stream_before_the_final_event(curated_data, client_for, alice, alices, fake_engine):
    fake_engine(FakeEngine(["Asthma makes the airways narrow. ", "It causes wheezing ", "and coughing at night."]))
    response = client_for(alice).post(
        f"/api/v1/conversations/{alices.pk}/messages/",
        {"content": "What are the symptoms of asthma?"},
        format="json",
        HTTP_ACCEPT="text/event-stream",
    )
    events = parse_sse(b"".join(response.streaming_content))
    # Pieces come a checked sentence at a time: the first when the second begins, the last at the end.
    assert [name for name, _ in events] == ["status", "status", "status", "piece", "piece", "done"]
    assert [data["stage"] for name, data in events[:3]] == ["received", "sources", "writing"]
    assert [data["text"] for name, data in events[3:5]] == [
        "Asthma makes the airways narrow. ",
        "It causes wheezing and coughing at night.",
    ]
    final = events[-1][1]
    assert final["source"] == "model"
    assert final["adapter_version"] == "fake-1"
    assert final["content"] == "Asthma makes the airways narrow. It causes wheezing and coughing at night."


@pytest.mark.django_db(transaction=True)  # closing the response by hand closes the DB connection
def test_a_client_that_leaves_mid_stream_gets_its_partial_answer_saved(
    curated_data, client_for, alice, alices, fake_engine
):
    fake_engine(FakeEngine(["Asthma makes the airways narrow. ", "It causes wheezing. ", "More text."]))
    response = client_for(alice).post(
        f"/api/v1/conversations/{alices.pk}/messages/",
        {"content": "What are the symptoms of asthma?"},
        format="json",
        HTTP_ACCEPT="text/event-stream",
    )
    stream = iter(response.streaming_content)
    for _ in range(3):
        next(stream)  # status: received, sources, writing
    next(stream)  # the first piece
    response.close()  # what the WSGI server does when the socket is gone
    saved = alices.messages.order_by("id").last()
    assert saved.role == "assistant"
    assert saved.partial is True
    assert saved.content == "Asthma makes the airways narrow."
    assert alices.messages.filter(role="user", content="What are the symptoms of asthma?").exists()


def test_a_question_saved_before_a_generation_failure_is_still_there(
    curated_data, client_for, alice, alices, monkeypatch
):
    def explode(*args, **kwargs):
        raise RuntimeError("pipeline exploded")

    monkeypatch.setattr("chat.services.stream_answer", explode)
    client = client_for(alice)
    client.raise_request_exception = False
    response = client.post(
        f"/api/v1/conversations/{alices.pk}/messages/", {"content": "Will this be kept?"}, format="json"
    )
    assert response.status_code == 500
    assert alices.messages.filter(role="user", content="Will this be kept?").exists()


def test_a_model_that_fails_mid_stream_still_ends_with_a_saved_answer(
    curated_data, client_for, alice, alices, fake_engine
):
    fake_engine(FakeEngine(["Asthma is ", "a condition"], fail_after=1))
    response = client_for(alice).post(
        f"/api/v1/conversations/{alices.pk}/messages/",
        {"content": "What are the symptoms of asthma?"},
        format="json",
        HTTP_ACCEPT="text/event-stream",
    )
    events = parse_sse(b"".join(response.streaming_content))
    assert events[-1][0] == "done"
    assert events[-1][1]["source"] == "rule"


def test_feedback_on_an_owned_answer(client_for, alice, alices):
    answer = alices.messages.get(role="assistant")
    response = client_for(alice).post(
        f"/api/v1/messages/{answer.pk}/feedback", {"rating": -1, "reason": "unclear", "comment": "Too vague"}
    )
    assert response.status_code == 201
    feedback = Feedback.objects.get()
    assert (feedback.message, feedback.rating, feedback.reason) == (answer, -1, "unclear")


def test_feedback_on_someone_elses_answer_is_a_404(client_for, bob, alices):
    answer = alices.messages.get(role="assistant")
    assert client_for(bob).post(f"/api/v1/messages/{answer.pk}/feedback", {"rating": 1}).status_code == 404
    assert not Feedback.objects.exists()


def test_feedback_validates_its_rating(client_for, alice, alices):
    answer = alices.messages.get(role="assistant")
    response = client_for(alice).post(f"/api/v1/messages/{answer.pk}/feedback", {"rating": 5})
    assert response.status_code == 400
    assert "rating" in response.json()


def test_feedback_is_only_for_answers(client_for, alice, alices):
    question = alices.messages.get(role="user")
    assert client_for(alice).post(f"/api/v1/messages/{question.pk}/feedback", {"rating": 1}).status_code == 404


# --- answers linked to their questions, one answer at a time -----------------------------------


def test_each_answer_is_linked_to_the_question_it_answers(curated_data, client_for, alice, alices):
    body = client_for(alice).post(
        f"/api/v1/conversations/{alices.pk}/messages/", {"content": "how do I use an inhaler?"}, format="json"
    )
    answer = Message.objects.get(pk=body.json()["id"])
    assert answer.reply_to == alices.messages.get(content="how do I use an inhaler?")
    assert body.json()["reply_to"] == answer.reply_to_id


def test_a_second_question_while_an_answer_is_being_written_is_a_409(
    curated_data, client_for, alice, alices, fake_engine
):
    fake_engine(FakeEngine(["Asthma makes the airways narrow ", "and causes wheezing."]))
    client = client_for(alice)
    url = f"/api/v1/conversations/{alices.pk}/messages/"
    first = client.post(
        url, {"content": "What are the symptoms of asthma?"}, format="json", HTTP_ACCEPT="text/event-stream"
    )
    stream = iter(first.streaming_content)
    next(stream)  # the first answer is being written

    for accept in ("application/json", "text/event-stream"):
        second = client.post(url, {"content": "And diabetes?"}, format="json", HTTP_ACCEPT=accept)
        assert second.status_code == 409
        assert "still answering your previous question" in second.content.decode()  # JSON, or an SSE error
    other_endpoint = client.post("/api/v1/ask", {"question": "And diabetes?", "conversation": alices.pk}, format="json")
    assert other_endpoint.status_code == 409
    assert not alices.messages.filter(content="And diabetes?").exists()

    list(stream)  # the first answer finishes and frees the conversation
    assert client.post(url, {"content": "And diabetes?"}, format="json").status_code == 201


def test_a_lock_left_by_a_worker_that_died_goes_stale(curated_data, client_for, alice, alices):
    Conversation.objects.filter(pk=alices.pk).update(answering_since=timezone.now() - timedelta(minutes=10))
    response = client_for(alice).post(f"/api/v1/conversations/{alices.pk}/messages/", {"content": "asthma?"})
    assert response.status_code == 201
    alices.refresh_from_db()
    assert alices.answering_since is None


@pytest.fixture
def interleaved(alice) -> Conversation:
    """Two asks that overlapped before answers were serialised: the asthma answer came last."""
    conversation = Conversation.objects.create(owner=alice, title="Two at once")
    asthma = Message.objects.create(conversation=conversation, role="user", content="What triggers asthma?")
    diabetes = Message.objects.create(conversation=conversation, role="user", content="What is diabetes?")
    Message.objects.create(
        conversation=conversation, role="assistant", content="Diabetes is high blood sugar.", reply_to=diabetes
    )
    Message.objects.create(
        conversation=conversation, role="assistant", content="Pollen and cold air trigger asthma.", reply_to=asthma
    )
    return conversation


def test_exports_put_each_answer_under_its_question(client_for, alice, interleaved):
    client = client_for(alice)
    md = client.get(f"/api/v1/conversations/{interleaved.pk}/export?format=md").content.decode()
    order = ["What triggers asthma?", "Pollen and cold air", "What is diabetes?", "Diabetes is high blood sugar."]
    assert [md.index(text) for text in order] == sorted(md.index(text) for text in order)
    js = client.get(f"/api/v1/conversations/{interleaved.pk}/export?format=json").json()
    assert [m["content"][:12] for m in js["messages"]] == [text[:12] for text in order]


def test_the_models_history_pairs_each_answer_with_its_question(alice, interleaved):
    question = Message.objects.create(conversation=interleaved, role="user", content="And for children?")
    history = services.history_for(interleaved, question)
    assert [turn.content[:12] for turn in history] == [
        "What trigger",
        "Pollen and c",
        "What is diab",
        "Diabetes is ",
    ]


def test_promoting_feedback_pairs_the_answer_with_its_own_question(db, interleaved, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    asthma_answer = interleaved.messages.get(content__startswith="Pollen")
    feedback = Feedback.objects.create(message=asthma_answer, rating=-1)
    curator = User.objects.create_superuser("root", password="root-password-1")
    admin = Client()
    admin.force_login(curator)
    response = admin.post(f"/admin/chat/feedback/{feedback.pk}/promote/", {"answer": "Pollen, smoke and cold air."})
    assert response.status_code == 302
    example = TrainingExample.objects.get(origin="feedback")
    assert example.question == "What triggers asthma?"


# --- one rating per answer --------------------------------------------------------------------


def test_rating_an_answer_again_replaces_the_rating(client_for, alice, alices):
    answer = alices.messages.get(role="assistant")
    client = client_for(alice)
    first = client.post(f"/api/v1/messages/{answer.pk}/feedback", {"rating": -1, "reason": "unclear", "comment": "?"})
    assert first.status_code == 201
    again = client.post(f"/api/v1/messages/{answer.pk}/feedback", {"rating": 1})
    assert again.status_code == 200
    feedback = Feedback.objects.get()
    assert (feedback.pk, feedback.rating, feedback.reason, feedback.comment) == (first.json()["id"], 1, "", "")
    assert again.json()["rating"] == 1


def test_renaming_during_an_answer_does_not_leave_the_conversation_locked(
    curated_data, client_for, alice, alices, monkeypatch
):
    Conversation.objects.filter(pk=alices.pk).update(answering_since=timezone.now())
    loaded_mid_answer = Conversation.objects.get(pk=alices.pk)
    Conversation.objects.filter(pk=alices.pk).update(answering_since=None)  # then the answer finished
    monkeypatch.setattr(api.ConversationViewSet, "get_object", lambda view: loaded_mid_answer)
    client = client_for(alice)
    assert client.patch(f"/api/v1/conversations/{alices.pk}/", {"title": "Renamed"}, format="json").status_code == 200
    monkeypatch.undo()
    assert client.post(f"/api/v1/conversations/{alices.pk}/messages/", {"content": "asthma?"}).status_code == 201
    alices.refresh_from_db()
    assert alices.title == "Renamed"


def test_ask_streams_and_starts_its_conversation_with_the_question(curated_data, client_for, alice):
    response = client_for(alice).post(
        "/api/v1/ask", {"question": "What are the symptoms of asthma?"}, format="json", HTTP_ACCEPT="text/event-stream"
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    events = parse_sse(b"".join(response.streaming_content))
    conversation = Conversation.objects.get()
    assert conversation.owner == alice
    name, status = events[0]
    assert name == "status"
    assert status["conversation"] == {
        "id": conversation.pk,
        "title": "What are the symptoms of asthma?",
        "created_at": status["conversation"]["created_at"],
        "updated_at": status["conversation"]["updated_at"],
    }
    assert events[-1][0] == "done"
    assert events[-1][1]["conversation"] == conversation.pk
    assert [m.role for m in conversation.messages.all()] == ["user", "assistant"]
    conversation.refresh_from_db()
    assert conversation.answering_since is None


def test_an_anonymous_first_question_gets_its_conversation_and_its_owner(curated_data, client):
    client.get("/")
    response = client.post(
        "/api/v1/ask", {"question": "What is asthma?"}, content_type="application/json", HTTP_ACCEPT="text/event-stream"
    )
    events = parse_sse(b"".join(response.streaming_content))
    conversation_id = events[0][1]["conversation"]["id"]
    assert client.get(f"/api/v1/conversations/{conversation_id}/").status_code == 200
    assert Client().get(f"/api/v1/conversations/{conversation_id}/").status_code == 404


@pytest.mark.parametrize("accept", ["application/json", "text/event-stream"])
def test_a_refused_first_question_starts_no_conversation(curated_data, client_for, alice, settings, accept):
    settings.MEDBOT_RATE_LIMIT = "1/d"
    client = client_for(alice)
    assert (
        client.post("/api/v1/ask", {"question": "What is asthma?"}, format="json", HTTP_ACCEPT=accept).status_code
        == 200
    )
    refused = client.post("/api/v1/ask", {"question": "And hay fever?"}, format="json", HTTP_ACCEPT=accept)
    assert refused.status_code == 429
    invalid = client.post("/api/v1/ask", {"question": "  "}, format="json", HTTP_ACCEPT=accept)
    assert invalid.status_code == 400
    assert Conversation.objects.count() == 1
    assert not Conversation.objects.filter(messages__isnull=True).exists()


def test_ask_streams_into_an_owned_conversation_only(curated_data, client_for, alice, bob, alices):
    url = "/api/v1/ask"
    body = {"question": "How do I use an inhaler?", "conversation": alices.pk}
    assert client_for(bob).post(url, body, format="json", HTTP_ACCEPT="text/event-stream").status_code == 404
    response = client_for(alice).post(url, body, format="json", HTTP_ACCEPT="text/event-stream")
    events = parse_sse(b"".join(response.streaming_content))
    assert events[0][1]["conversation"]["id"] == alices.pk
    assert alices.messages.count() == 4
    assert Conversation.objects.count() == 1


def test_the_chat_page_opens_a_conversation_at_its_own_address_for_its_owner_only(client_for, alice, bob, alices):
    page = client_for(alice).get(f"/c/{alices.pk}")
    assert page.status_code == 200
    assert f'data-conversation="{alices.pk}"' in page.content.decode()
    assert "Asthma questions" in page.content.decode()
    assert page["Cache-Control"] == "no-store"
    assert client_for(bob).get(f"/c/{alices.pk}").status_code == 404
    assert Client().get(f"/c/{alices.pk}").status_code == 404
    assert client_for(alice).get("/c/999999").status_code == 404


def test_thanks_is_saved_as_a_pleasantry_not_as_no_reliable_answer(curated_data, client_for, alice, alices):
    client = client_for(alice)
    asked = client.post(f"/api/v1/conversations/{alices.pk}/messages/", {"content": "What is asthma?"}, format="json")
    thanks = client.post(f"/api/v1/conversations/{alices.pk}/messages/", {"content": "thanks!"}, format="json")
    assert asked.status_code == thanks.status_code == 201
    answer, reply = asked.json(), thanks.json()
    assert reply["source"] == "unavailable" and reply["fallback"] == "pleasantry"
    assert answer["fallback"] != "pleasantry"
    assert Message.objects.get(pk=reply["id"]).is_pleasantry
    exported = client.get(f"/api/v1/conversations/{alices.pk}/export?format=md").content.decode()
    assert "**MedBot** ·" in exported and "No reliable answer" not in exported


def test_the_stored_pleasantry_is_the_pipelines():
    assert Message.PLEASANTRY == pipeline.Fallback.PLEASANTRY

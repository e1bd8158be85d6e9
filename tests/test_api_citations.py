"""Citations travel with every answer: the ask endpoint, the SSE done event, the stored message,
and both export formats. The original POST /ask keeps its shape."""

from __future__ import annotations

import json
import re

from chat.models import Conversation, Message

GOUT_CITATION = {
    "title": "How is gout treated?",
    "publisher": "Test Clinic",
    "url": "https://clinic.example/gout-2",
    "source": "Test leaflets",
}


def sse_events(raw: bytes) -> list[tuple[str, dict]]:
    events = []
    for block in raw.decode().strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_the_ask_endpoint_returns_and_stores_the_citations(curated_data, knowledge_base, client_for, alice):
    body = client_for(alice).post("/api/v1/ask", {"question": "How is gout treated?"}, format="json").json()
    assert body["source"] == "extract"
    assert body["triage_level"] == "routine"
    assert body["citations"] == [GOUT_CITATION]
    assert body["message"]["citations"] == [GOUT_CITATION]
    assert Message.objects.get(pk=body["message"]["id"]).citations == [GOUT_CITATION]


def test_a_no_reliable_answer_cites_nothing(curated_data, knowledge_base, client_for, alice):
    body = client_for(alice).post("/api/v1/ask", {"question": "What is sarcoidosis?"}, format="json").json()
    assert body["source"] == "unavailable"
    assert body["citations"] == []


def test_the_streamed_done_event_carries_the_citations(curated_data, knowledge_base, client_for, alice):
    conversation = Conversation.objects.create(owner=alice)
    response = client_for(alice).post(
        f"/api/v1/conversations/{conversation.pk}/messages/",
        {"content": "How is gout treated?"},
        format="json",
        HTTP_ACCEPT="text/event-stream",
    )
    name, final = sse_events(b"".join(response.streaming_content))[-1]
    assert name == "done"
    assert final["citations"] == [GOUT_CITATION]


def test_exports_list_the_sources_under_each_answer(curated_data, knowledge_base, client_for, alice):
    client = client_for(alice)
    conversation = client.post("/api/v1/ask", {"question": "How is gout treated?"}, format="json").json()[
        "conversation"
    ]
    markdown = client.get(f"/api/v1/conversations/{conversation}/export/?format=md").content.decode()
    assert "Sources:\n- How is gout treated? (Test Clinic) <https://clinic.example/gout-2>" in markdown
    exported = client.get(f"/api/v1/conversations/{conversation}/export/?format=json").json()
    assert exported["messages"][-1]["citations"] == [GOUT_CITATION]


def test_the_original_ask_endpoint_keeps_its_shape(curated_data, knowledge_base, client):
    response = client.post("/ask", {"question": "How is gout treated?"}, content_type="application/json")
    assert set(response.json()) == {"response", "question"}


def test_the_markdown_export_shows_markup_in_titles_and_questions_as_text(
    curated_data, knowledge_base, client_for, alice
):
    from knowledge.models import Passage

    Passage.objects.filter(external_id="gout-2").update(
        title='[Phish](https://evil.example/) <img src=x onerror="alert(1)">', url="JaVaScRiPt:alert(6)"
    )
    knowledge_base.save()
    client = client_for(alice)
    conversation = client.post("/api/v1/ask", {"question": "How is gout treated? <b>bold</b>"}, format="json").json()[
        "conversation"
    ]
    markdown = client.get(f"/api/v1/conversations/{conversation}/export/?format=md").content.decode()
    assert "<img" not in markdown and "<b>" not in markdown
    assert not re.search(r"(?<!\\)\]\(", markdown)  # no live link syntax
    assert "\\[Phish\\](https://evil.example/) &lt;img" in markdown
    assert "alert(6)" not in markdown


def test_an_overview_is_cited_by_its_topic():
    from inference.retrieval import citation_for
    from knowledge.search import Document

    overview = Document(key="passage:1", title="What is (are) Kidney Disease ?", focus="Kidney Disease", text="...")
    assert citation_for(overview).title == "Kidney Disease"
    treatment = Document(key="passage:2", title="What are the treatments for Gout?", focus="Gout", text="...")
    assert citation_for(treatment).title == "What are the treatments for Gout?"


def test_a_leaflet_asked_of_is_cited_by_its_topic_not_its_title_twice():
    from inference.retrieval import citation_for
    from knowledge.search import Document

    asked = Document(key="passage:1", title="What causes What I need to know about Hepatitis C?", focus="x", text=".")
    assert citation_for(asked).title == "What causes Hepatitis C?"
    leaflet = Document(
        key="passage:2", title="What is (are) What I need to know about Hepatitis C?", focus="x", text="."
    )
    assert citation_for(leaflet).title == "What I need to know about Hepatitis C"

"""Each triage level as the API returns and stores it: emergency answers only with the emergency
text, urgent answers normally under a banner, routine answers plainly."""

from __future__ import annotations

from chat.models import Message

URGENT = "my calf is hot and swollen since my long flight yesterday"


def ask(client, question: str) -> dict:
    response = client.post("/api/v1/ask", {"question": question}, format="json")
    assert response.status_code == 200
    return response.json()


def test_an_emergency_is_answered_with_the_emergency_text_alone(curated_data, client_for, alice, settings):
    settings.MEDBOT_EMERGENCY_NUMBER = "112"
    body = ask(client_for(alice), "my dad collapsed and is not breathing")
    assert body["source"] == "emergency"
    assert body["triage_level"] == "emergency"
    assert "112" in body["answer"]
    assert body["citations"] == []
    assert Message.objects.get(pk=body["message"]["id"]).triage_level == "emergency"


def test_an_urgent_question_gets_a_normal_answer_under_a_banner(curated_data, client_for, alice):
    body = ask(client_for(alice), URGENT)
    assert body["source"] != "emergency"
    assert body["triage_level"] == "urgent"
    assert "today" in body["message"]["triage_note"]
    saved = Message.objects.get(pk=body["message"]["id"])
    assert (saved.triage_level, saved.triage_note) == ("urgent", body["message"]["triage_note"])


def test_the_urgent_flag_survives_the_answer_cache(curated_data, client_for, alice):
    client = client_for(alice)
    ask(client, URGENT)
    assert ask(client, URGENT)["triage_level"] == "urgent"


def test_a_question_about_a_condition_is_routine(curated_data, client_for, alice):
    body = ask(client_for(alice), "what is the difference between a heart attack and cardiac arrest?")
    assert body["triage_level"] == "routine"
    assert body["source"] != "emergency"


def test_the_markdown_export_keeps_the_urgent_banner(curated_data, client_for, alice):
    client = client_for(alice)
    body = ask(client, URGENT)
    markdown = client.get(f"/api/v1/conversations/{body['conversation']}/export/?format=md").content.decode()
    assert f"**Urgent.** {body['message']['triage_note']}" in markdown


def test_an_urgent_question_the_sources_do_not_answer_points_to_the_banner(
    curated_data, client_for, alice, monkeypatch
):
    monkeypatch.setattr("inference.pipeline.find_passages", lambda question, history=(): [])
    body = ask(client_for(alice), URGENT)
    assert (body["source"], body["triage_level"]) == ("unavailable", "urgent")
    # Not "I don't have a reliable answer" under the urgent banner: the banner is the answer.
    assert body["answer"].startswith("Follow the advice above.")
    assert "reliable answer" not in body["answer"]

"""The answer pipeline with the model off: every question gets a safe answer and the disclaimer."""

from __future__ import annotations

import re

import pytest
from django.core.management import call_command

from inference import pipeline
from inference.models import Disclaimer, EmergencyRule, FallbackRule

ON_TOPIC = [
    ("What are the symptoms of asthma?", "Asthma"),
    ("how do i lower my blood pressure", "blood pressure"),
    ("what can I do about my migraine attacks", "Migraine"),
    ("my back hurts after lifting a box", "Back pain"),
    ("my child has a fever of 38", "Fever in children"),
    ("is it a cold or the flu?", "Flu"),
    ("tips for quitting smoking", "smoking"),
    ("what should I eat to lower cholesterol", "Cholesterol"),
]
NONSENSE = ["asdf qwerty zxcv", "what is the capital of France", "!!!???", "purple monkey dishwasher"]


@pytest.mark.parametrize("question,topic", ON_TOPIC)
def test_on_topic_questions_are_answered_from_the_curated_rules(curated_data, question, topic):
    result = pipeline.answer(question)
    assert result.source == "rule"
    assert topic.lower() in result.matched_rule.lower()
    assert result.disclaimer == Disclaimer.objects.get(active=True).text
    assert result.citations == [
        {"title": result.matched_rule, "publisher": "MedBot", "url": "", "source": "MedBot curated entries"}
    ]


@pytest.mark.parametrize("question", NONSENSE)
def test_nonsense_gets_the_safe_no_reliable_answer_text(curated_data, question):
    result = pipeline.answer(question)
    assert result.source == "unavailable"
    assert "don't have a reliable answer" in result.text
    assert result.disclaimer


@pytest.mark.parametrize("greeting", ["hi", "Hello!", "good morning", "hi there medbot"])
def test_a_greeting_gets_told_what_medbot_answers(curated_data, greeting):
    result = pipeline.answer(greeting, use_model=False)
    assert result.source == "unavailable" and result.fallback_reason is pipeline.Fallback.PLEASANTRY
    assert result.text.startswith("Hello. I answer health questions")


@pytest.mark.parametrize("thanks", ["thanks", "thank you so much", "thanks that really helped!", "ok thanks"])
def test_thanks_after_an_answer_gets_a_welcome_not_the_answer_again(curated_data, knowledge_base, thanks):
    from inference.prompting import Turn

    history = [Turn("user", "How is gout treated?"), Turn("assistant", "Gout is treated with colchicine.")]
    result = pipeline.answer(thanks, history, use_model=False)
    assert result.source == "unavailable" and result.citations == []
    assert result.text.startswith("You're welcome.")


def test_goodbye_gets_a_goodbye(curated_data):
    assert pipeline.answer("ok bye", use_model=False).text.startswith("Take care.")


def test_a_question_naming_an_animal_with_no_answer_also_points_to_a_vet(curated_data):
    result = pipeline.answer("My cat keeps sneezing and has gone off her food")
    assert result.source == "unavailable"
    assert "ask a vet" in result.text and "pharmacist" in result.text
    assert "vet" not in pipeline.answer("Is a CAT scan safe in the first trimester?").text


def test_an_emergency_that_names_an_animal_also_points_to_a_vet(curated_data):
    result = pipeline.answer("my dog collapsed and is not breathing")
    assert result.source == "emergency"
    assert "call a vet" in result.text
    assert "vet" not in pipeline.answer("my dad collapsed and is not breathing").text
    # The attack review: the "I" of "what should I do" made it a question about the writer.
    assert "call a vet" in pipeline.answer("my cat is having a seizure what should i do").text


def test_emergencies_come_back_with_the_emergency_response_and_number(curated_data, settings):
    settings.MEDBOT_EMERGENCY_NUMBER = "112"
    result = pipeline.answer("i think im having a heart attack my chest is crushing")
    assert result.source == "emergency"
    assert "112" in result.text
    assert "{number}" not in result.text
    assert result.disclaimer


def test_emergencies_are_checked_before_anything_else(curated_data, monkeypatch):
    monkeypatch.setattr(pipeline, "find_passages", lambda *args: pytest.fail("retrieval ran before triage"))
    assert pipeline.answer("my dad collapsed and is not breathing").source == "emergency"


def test_hit_counts_rise_when_rules_answer(curated_data):
    pipeline.answer("What are the symptoms of asthma?")
    rule = FallbackRule.objects.get(title__icontains="asthma")
    assert rule.hit_count == 1
    pipeline.answer("my chest hurts and i cant breathe, i think its a heart attack")
    assert sum(EmergencyRule.objects.values_list("hit_count", flat=True)) == 1


def test_a_disabled_rule_no_longer_answers(curated_data):
    FallbackRule.objects.filter(title__icontains="asthma").update(enabled=False)
    FallbackRule.objects.first().save()  # any save signals the change, as the admin does
    result = pipeline.answer("What are the symptoms of asthma?")
    assert "asthma" not in result.matched_rule.lower()


def test_a_new_disclaimer_is_used_at_once(curated_data):
    new = Disclaimer.objects.create(text="Version two of the disclaimer.", version=2)
    new.activate()
    assert pipeline.answer("What are the symptoms of asthma?").disclaimer == "Version two of the disclaimer."


def test_answers_are_cached_until_the_rules_change(curated_data):
    first = pipeline.answer("What are the symptoms of asthma?")
    assert not first.cached
    second = pipeline.answer("what are the symptoms of  ASTHMA?")
    assert second.cached and second.text == first.text
    rule = FallbackRule.objects.get(title__icontains="asthma")
    rule.answer = "Updated asthma answer with enough words to be a proper answer here."
    rule.save()
    third = pipeline.answer("What are the symptoms of asthma?")
    assert not third.cached
    assert third.text == rule.answer


def test_emergencies_are_never_cached(curated_data):
    pipeline.answer("my dad collapsed and is not breathing")
    assert not pipeline.answer("my dad collapsed and is not breathing").cached


def test_conversations_with_history_are_not_served_from_the_cache(curated_data):
    from inference.prompting import Turn

    pipeline.answer("What are the symptoms of asthma?")
    assert not pipeline.answer(
        "What are the symptoms of asthma?", [Turn("user", "hi"), Turn("assistant", "hello")]
    ).cached


def test_without_an_active_disclaimer_a_safe_default_is_used(db):
    result = pipeline.answer("anything at all")
    assert "not medical advice" in result.disclaimer


def test_the_ask_command_prints_answer_source_and_timing(curated_data, capsys):
    call_command("ask", "What are the symptoms of asthma?")
    out = capsys.readouterr().out
    assert "source: rule" in out
    assert "answer:" in out
    assert re.search(r"\b\d+(\.\d+)? s\b", out), out

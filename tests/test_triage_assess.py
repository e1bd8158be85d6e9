"""``triage.assess``: the API the pipeline calls, over the curated data in the database."""

from __future__ import annotations

import pytest

from inference import triage
from inference.models import Concept, EmergencyRule
from inference.triage import classifier


@pytest.fixture
def rules_only(settings) -> None:
    settings.MEDBOT_TRIAGE_CLASSIFIER = False


def test_an_emergency_answers_with_the_rules_text_and_the_local_number(curated_data, rules_only, settings) -> None:
    settings.MEDBOT_EMERGENCY_NUMBER = "112"
    result = triage.assess("My chest feels crushed and the pain goes into my jaw, I'm sweating")
    assert result.level == "emergency"
    assert result.rule == "Heart attack"
    assert result.by == "rules"
    assert {"chest_discomfort", "sweating"} <= set(result.concepts)
    assert result.response.startswith("Call 112 now.")
    assert "{number}" not in result.response


def test_a_self_harm_answer_carries_the_crisis_line(curated_data, rules_only, settings) -> None:
    settings.MEDBOT_CRISIS_LINE = "call 116 123"
    result = triage.assess("i keep thinking about ending my life")
    assert result.rule == "Suicidal thoughts and self-harm"
    assert "call 116 123" in result.response


def test_an_urgent_problem_gets_a_see_a_doctor_today_banner(curated_data, rules_only) -> None:
    result = triage.assess("my calf has been hot and swollen since I flew back from Sydney")
    assert result.level == "urgent"
    assert result.rule == "Possible blood clot in the leg"
    assert result.response.startswith("See a doctor or urgent care today")


def test_a_routine_question_gets_no_response_text(curated_data, rules_only) -> None:
    result = triage.assess("what helps with dry skin in winter?")
    assert result == triage.TriageResult(level="routine", rule="", concepts=(), by="", response="")


def test_it_counts_a_hit_on_the_rule_that_fired_unless_told_not_to(curated_data, rules_only) -> None:
    triage.assess("he's having a seizure and it won't stop", count_hits=False)
    rule = EmergencyRule.objects.get(name="Long or first seizure")
    assert rule.hit_count == 0
    triage.assess("he's having a seizure and it won't stop")
    rule.refresh_from_db()
    assert rule.hit_count == 1


def test_the_classifier_alone_raises_a_message_to_emergency_with_the_general_text(
    curated_data, monkeypatch, settings
) -> None:
    settings.MEDBOT_EMERGENCY_NUMBER = "999"
    monkeypatch.setattr(classifier, "probability", lambda text: 0.97)
    result = triage.assess("my husband looks awful and grey and is not himself")
    assert (result.level, result.rule, result.by) == ("emergency", "", "classifier")
    assert "Call 999 now" in result.response


def test_the_classifier_never_lowers_what_the_rules_say(curated_data, monkeypatch) -> None:
    monkeypatch.setattr(classifier, "probability", lambda text: 0.01)
    result = triage.assess("my dad collapsed and is not breathing")
    assert (result.level, result.by) == ("emergency", "rules")


def test_both_agreeing_is_reported_as_both(curated_data, monkeypatch) -> None:
    monkeypatch.setattr(classifier, "probability", lambda text: 0.99)
    assert triage.assess("my dad collapsed and is not breathing").by == "both"


def test_the_classifier_does_not_override_a_question_about_a_condition(curated_data, monkeypatch) -> None:
    monkeypatch.setattr(classifier, "probability", lambda text: 0.99)
    assert triage.assess("what is the survival rate for cardiac arrest?").level == "routine"


def test_the_classifier_alone_does_not_raise_a_greeting(curated_data, monkeypatch) -> None:
    # The trained classifier scored "hi" over 0.9: too few words to be sure of anything.
    monkeypatch.setattr(classifier, "probability", lambda text: 0.97)
    assert triage.assess("hi").level == "routine"
    assert triage.assess("hi im ed").level == "routine"
    assert triage.assess("my husband looks grey").level == "emergency"
    assert triage.assess("help!!").level == "emergency"  # a cry for help is short too


def test_the_classifier_alone_does_not_raise_thanks(curated_data, monkeypatch) -> None:
    # The trained classifier scored this 0.91.
    monkeypatch.setattr(classifier, "probability", lambda text: 0.97)
    assert triage.assess("thanks so much that really helped").level == "routine"
    # A report that opens with a question is still a report (the second attack review's finding on
    # a first version that held the classifier back for it).
    stroke = "could my mum be having a stroke? her words are coming out jumbled and she cant hold a cup"
    assert triage.assess(stroke).level == "emergency"
    grandad = "our dog was barking so we checked on grandad and he is cold clammy and drifting off"
    assert triage.assess(grandad).level == "emergency"


def test_the_classifier_alone_does_not_raise_a_question_about_nobody(curated_data, monkeypatch) -> None:
    # The trained classifier scored this 0.90: no red flag, nobody it is happening to.
    monkeypatch.setattr(classifier, "probability", lambda text: 0.97)
    assert triage.assess("what foods to avoid with gout").level == "routine"
    assert triage.assess("my dad is grey and not himself").level == "emergency"


def test_a_classifier_only_emergency_about_a_child_leaves_out_the_crisis_line(curated_data, monkeypatch) -> None:
    # The fresh eye: "my baby is floppy" got the suicide line. The generic text offers it only when the
    # message could be about the writer.
    monkeypatch.setattr(classifier, "probability", lambda text: 0.97)
    about_a_child = triage.assess("my little boy is grey and not himself")
    assert about_a_child.level == "emergency" and about_a_child.rule == ""
    assert "Call" in about_a_child.response and "988" not in about_a_child.response
    about_me = triage.assess("i am grey and not myself")
    assert about_me.level == "emergency" and about_me.rule == "" and "988" in about_me.response


@pytest.mark.parametrize("text", ["help!!", "please help me", "Im dying", "call an ambulance", "SOS"])
def test_a_bare_cry_for_help_is_an_emergency_whatever_the_classifier_says(curated_data, monkeypatch, text) -> None:
    monkeypatch.setattr(classifier, "probability", lambda text: 0.05)
    result = triage.assess(text)
    assert result.level == "emergency" and result.by == "rules"
    assert result.response.startswith("This may be an emergency.")


def test_asking_for_help_with_something_else_is_not_a_cry_for_help(curated_data, rules_only) -> None:
    for text in ("help with my diet", "can you help me quit smoking", "please help me understand my results"):
        assert triage.assess(text).level == "routine", text
    assert triage.assess("help").level == "emergency"  # with the classifier off too


def test_the_bench_scores_a_message_as_assess_serves_it(curated_data) -> None:
    from inference.triage import evaluation
    from inference.triage.corpus import Example

    [judged] = evaluation.judge([Example("help!!", "emergency", "cry")], triage.fixture_triage(), None)
    assert judged.level == "emergency" and judged.rules_level == "routine"


def test_an_everyday_complaint_alone_needs_the_classifier_to_be_sure(curated_data, monkeypatch) -> None:
    monkeypatch.setattr(classifier, "probability", lambda text: 0.8)  # over the threshold, not sure
    assert triage.assess("my friend ali has a headache").level == "routine"
    assert triage.assess("i feel dizzy and sick this morning").level == "routine"
    assert triage.assess("my friend has a headache and is very drowsy").level == "emergency"  # drowsy is not everyday


@pytest.mark.parametrize(
    "text",
    [
        "my friend ali has a headache",
        "help with my diet",
        "I got bitten by a mosquito and it itches a lot",
        "dizzy",
        "concussion",
        "what foods to avoid with gout",
        "so anxious before my exams i cant focus on revising",
    ],
)
def test_everyday_messages_that_once_got_call_911_do_not(curated_data, text) -> None:
    # With the trained classifier: each of these got "Call 911" (0.6 to 0.92) on 17a4cd2 or in a first
    # version of the everyday-complaint change, which the reviews caught.
    assert triage.assess(text).level == "routine"


def test_an_elephant_is_a_chest_symptom_only_on_the_chest(curated_data, monkeypatch) -> None:
    monkeypatch.setattr(classifier, "probability", lambda text: 0.7)  # over the threshold, not sure
    assert triage.assess("banana purple elephant keyboard?").level == "routine"
    assert "chest_crushing" in triage.assess("it feels like an elephant sitting on my chest").concepts


def test_a_saved_concept_is_used_on_the_next_message_without_a_restart(curated_data, rules_only) -> None:
    text = "my grandad has a gobstopper feeling in his chest and feels sick"
    assert triage.assess(text).level != "emergency"
    chest = Concept.objects.get(name="chest_crushing")
    chest.synonyms += "\ngobstopper feeling"
    chest.save()  # post_save bumps the triage version
    assert triage.assess(text).rule == "Heart attack"


@pytest.mark.parametrize("text", [None, "", " ", "\x00", "💔" * 500, "x" * 100_000, 42])
def test_assess_never_raises_for_odd_input(curated_data, text) -> None:
    assert triage.assess(text).level in triage.LEVELS


def test_assess_answers_routine_and_logs_when_triage_itself_fails(curated_data, monkeypatch, caplog) -> None:
    def broken() -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(triage.compiled, "get", broken)
    assert triage.assess("my dad collapsed").level == "routine"
    assert "Triage failed" in caplog.text


def test_without_database_tables_it_falls_back_to_the_shipped_data(monkeypatch, rules_only, caplog) -> None:
    # No ``db`` fixture: pytest-django blocks database access, as a broken database would.
    triage.compiled.reset()
    assert triage.assess("she is unconscious and not breathing", count_hits=False).level == "emergency"
    assert "using the shipped fixtures" in caplog.text
    triage.compiled.reset()


def test_the_old_find_emergency_api_answers_from_assess(curated_data, rules_only) -> None:
    rules = triage.compile_rules(EmergencyRule.objects.all())
    assert all(rule.name for rule in rules)
    found = triage.find_emergency("my mum collapsed and will not wake up", rules)
    assert found is not None and found.name == "Unresponsive or not breathing"
    assert "911" in triage.render_response(found, "911", "988")
    assert triage.find_emergency("my calf is hot and swollen after a long flight", rules) is None  # urgent


def test_with_the_shared_cache_down_it_rebuilds_now_and_then_not_on_every_message(
    curated_data, rules_only, monkeypatch
) -> None:
    monkeypatch.setattr(triage.versions, "current", lambda name: "unknown")
    triage.compiled.reset()
    builds = []
    build = triage.compiled._build
    monkeypatch.setattr(triage.compiled, "_build", lambda: builds.append(1) or build())
    for _ in range(3):
        assert triage.assess("she is not breathing").level == "emergency"
    assert len(builds) == 1
    triage.compiled.reset()


def test_a_red_flag_told_over_two_messages_is_read_together(curated_data, rules_only) -> None:
    # The attack review: "my baby is 7 weeks old", then "she has a temperature of 38.4 and is floppy".
    alone = triage.assess("she has a temperature of 38.4")
    together = triage.assess_in_context("she has a temperature of 38.4", ["my baby is 7 weeks old"])
    assert alone.level != "emergency"
    assert together.level == "emergency" and together.rule == "Fever in a baby under 3 months"


def test_a_follow_up_in_the_middle_of_an_emergency_gets_the_emergency_answer_again(curated_data, rules_only) -> None:
    earlier = ["I took a lot of paracetamol about an hour ago"]
    assert triage.assess_in_context("what should i do now", earlier).rule == "Overdose and poisoning"
    # ...but thanks is thanks, and another topic's question stays what it is.
    assert triage.assess_in_context("thanks", earlier).level == "routine"
    assert triage.assess_in_context("how is asthma treated", ["what is asthma"]).level == "routine"


def test_the_answer_flow_reads_the_conversations_earlier_messages(curated_data, rules_only) -> None:
    from inference import pipeline
    from inference.prompting import Turn

    history = [Turn("user", "my baby is 7 weeks old"), Turn("assistant", "How can I help?")]
    result = pipeline.answer("she has a temperature of 38.4", history)
    assert result.source == "emergency" and "3 months" in result.text


def test_an_emergency_takes_the_more_precise_advice_the_earlier_messages_give(curated_data, rules_only) -> None:
    # The second look: "my daughter is 2", then "shes just drunk some bleach" got the advice about medicines.
    alone = triage.assess("shes just drunk some bleach")
    together = triage.assess_in_context("shes just drunk some bleach", ["my daughter is 2"])
    assert alone.rule == "Overdose and poisoning"
    assert together.rule == "Child swallowed a battery, magnet or chemical"
    # ...but an earlier emergency about something else does not take over the new one's advice.
    other = triage.assess_in_context("i drank some bleach", ["my dad has crushing chest pain"])
    assert other.rule == "Overdose and poisoning"


def test_the_generic_emergency_text_leaves_out_the_crisis_line_for_a_relative_or_a_pet(
    curated_data, monkeypatch
) -> None:
    monkeypatch.setattr(classifier, "probability", lambda text: 0.97)
    for text in ("my mums words are all wrong and strange today", "my dog swallowed a sock what should i do"):
        result = triage.assess(text)
        assert result.level == "emergency" and result.rule == "" and "988" not in result.response, text


def test_a_message_read_in_context_counts_one_hit_on_the_rule_it_answers_with(curated_data, rules_only) -> None:
    # Before, the "more precise advice" branch counted the rule of the message alone (medicines), and an
    # escalation counted the message's own rule as well as the conversation's.
    def hits() -> dict[str, int]:
        return {rule.name: rule.hit_count for rule in EmergencyRule.objects.filter(hit_count__gt=0)}

    result = triage.assess_in_context("shes just drunk some bleach", ["my daughter is 2"])
    assert hits() == {result.rule: 1}
    EmergencyRule.objects.update(hit_count=0)
    result = triage.assess_in_context("she has a temperature of 38.4", ["my baby is 7 weeks old"])
    assert hits() == {"Fever in a baby under 3 months": 1}
    EmergencyRule.objects.update(hit_count=0)
    triage.assess_in_context("she has a temperature of 38.4", ["my baby is 7 weeks old"], count_hits=False)
    assert hits() == {}


@pytest.mark.parametrize(
    ("message", "rule"),
    [
        ("can't breathe properly, lips going grey, what is asthma", "Severe breathing difficulty"),
        ("crushing chest pain and sweating, what is angina", "Heart attack"),
        ("face drooping and slurred speech, what is a stroke", "Stroke (FAST)"),
    ],
)
def test_a_report_told_before_a_question_is_a_report(curated_data, rules_only, message, rule) -> None:
    # The attack review: with nobody named, ", what is X" after the symptoms made the message a question
    # about X, and routine.
    assert triage.assess(message, count_hits=False).rule == rule
    # A question first, then the signs it asks about, is still a question.
    assert triage.assess("what are the signs of a stroke? face drooping, slurred speech").level == "routine"


def test_the_pregnancy_emergency_advice_speaks_of_what_the_rule_catches(curated_data, rules_only) -> None:
    # The attack review: a severe headache with flashing lights at 30 weeks got only the bleeding advice.
    result = triage.assess("i am 30 weeks pregnant and have a terrible headache and see flashing lights")
    assert result.level == "emergency"
    assert "headache" in result.response and "bleeding" in result.response


@pytest.mark.parametrize(
    "question",
    [
        "How rare is sialic acid storage disease?",  # "acid" is also a burn and a drug
        "Is there a cure for giant axonal neuropathy?",  # "axonal" read as "agonal"
        "Are there clinical trials for acid lipase disease?",
        "Does sialic acid storage disease run in families?",
    ],
)
def test_a_question_about_a_named_disease_is_not_an_emergency(curated_data, rules_only, question) -> None:
    # The knowledge split's full pipeline: these got the burns, the CPR or the sight-loss text.
    assert triage.assess(question, count_hits=False).level == "routine"

"""Emergency triage over the curated rules in fixtures/emergency_rules.json.

No database: the fixture is read as JSON and compiled from plain objects. The phrasing lists are the
curated regression set; a change to a pattern or to the guard must keep every one of them right.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from inference.triage import CompiledEmergencyRule, compile_rules, find_emergency, normalise, render_response

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "emergency_rules.json"

HEART = "Heart attack"
STROKE = "Stroke (FAST)"
BREATHING = "Severe breathing difficulty"
CHOKING = "Choking"
ANAPHYLAXIS = "Anaphylaxis"
SELF_HARM = "Suicidal thoughts and self-harm"
OVERDOSE = "Overdose and poisoning"
BLEEDING = "Severe bleeding"
UNRESPONSIVE = "Unresponsive or not breathing"
SEIZURE = "Long or first seizure"
MENINGITIS = "Meningitis signs"
HEADACHE = "Sudden worst-ever headache"
BABY_FEVER = "Fever in a baby under 3 months"
HEAD_INJURY = "Head injury with confusion or vomiting"
PREGNANCY = "Heavy bleeding in pregnancy"
SEPSIS = "Sepsis signs"
BURNS = "Severe burns"

# Emergencies as people type them, and the rule that should answer.
POSITIVES: list[tuple[str, str]] = [
    ("i think im having a heart attack", HEART),
    ("my dad has crushing chest pain and his arm hurts", HEART),
    ("chest feels like an elephant is sitting on it and im sweating loads", HEART),
    ("having really bad chest pains going down my left arm and jaw", HEART),
    ("my husband is clammy and grey with pain in his chest", HEART),
    ("hart attack i think my mum is having one", HEART),
    ("my chest hurts so bad and my left arm is numb", HEART),
    ("my wife suddenly cant lift her left arm and her face is drooping", STROKE),
    ("her face is drooping and speech slurred", STROKE),
    ("i think my mum had a stroke her words are all jumbled", STROKE),
    ("grandad is talking gibberish and one side of his face has dropped", STROKE),
    ("sudden numbness on one side of my body and i cant see properly", STROKE),
    ("pretty sure my nan is having a stroek her arm is weak", STROKE),
    ("cant breathe", BREATHING),
    ("i cant breath properly and my lips are going blue", BREATHING),
    ("my son is having a bad asthma attack and his inhaler isnt working", BREATHING),
    ("struggling to breath cant get any air in", BREATHING),
    ("I cannot breathe!!", BREATHING),
    ("my baby is choking on a grape", CHOKING),
    ("she is chocking and cant talk", CHOKING),
    ("throat is closing up after eating peanuts", ANAPHYLAXIS),
    ("stung by a bee and my face and tongue are swelling and its hard to breathe", ANAPHYLAXIS),
    ("i think im having an anaphalaxis reaction", ANAPHYLAXIS),
    ("my daughter ate shrimp and now her lips are swollen and shes wheezing", ANAPHYLAXIS),
    ("i want to kill myself", SELF_HARM),
    ("is it normal to want to kill myself", SELF_HARM),
    ("i dont want to be alive anymore", SELF_HARM),
    ("been cutting myself and its getting worse", SELF_HARM),
    ("feeling really sucidal tonight", SELF_HARM),
    ("my brother says he wants to end his life", SELF_HARM),
    ("thinking about ending it all", SELF_HARM),
    ("took too many pills", OVERDOSE),
    ("my friend took a whole bottle of paracetamol an hour ago", OVERDOSE),
    ("my 2 year old drank some bleach", OVERDOSE),
    ("toddler swallowed a button battery", OVERDOSE),
    ("my kid ate grandmas heart pills", OVERDOSE),
    ("help my friend OD'd on heroin", OVERDOSE),
    ("theres blood everywhere my son cut his leg on glass and it wont stop bleeding", BLEEDING),
    ("blood is spurting out of his arm", BLEEDING),
    ("dad is vomiting blood", BLEEDING),
    ("my dad collapsed and isnt breathing", UNRESPONSIVE),
    ("she wont wake up", UNRESPONSIVE),
    ("found my neighbour unconscious on the floor", UNRESPONSIVE),
    ("he is unresponsive what do i do", UNRESPONSIVE),
    ("my daughter is having her first seizure", SEIZURE),
    ("he has been fitting for 6 minutes and it wont stop", SEIZURE),
    ("my son is having a siezure", SEIZURE),
    ("fever and a stiff neck and the light hurts her eyes", MENINGITIS),
    ("my son has a rash that doesnt fade when i press a glass on it", MENINGITIS),
    ("worst headache of my life came on suddenly", HEADACHE),
    ("headache came on out of nowhere like being hit with a bat", HEADACHE),
    ("baby is 6 weeks old and has a fever of 38.5", BABY_FEVER),
    ("my 3 week old feels really hot temp 38", BABY_FEVER),
    ("newborn has a temperature of 38.2 what do i do", BABY_FEVER),
    ("my son fell off the trampoline and hit his head now hes being sick and confused", HEAD_INJURY),
    ("she banged her head on the table and keeps throwing up", HEAD_INJURY),
    ("im 20 weeks pregnant and bleeding heavily", PREGNANCY),
    ("pregnent and soaking through pads with clots", PREGNANCY),
    ("i think he has sepsis his skin is mottled", SEPSIS),
    ("mum has a uti and a fever and now shes really confused and hasnt peed all day", SEPSIS),
    ("my son pulled boiling water over his chest and the skin is peeling off", BURNS),
    ("severe burn on his arm the skin looks white and leathery", BURNS),
    ("my daughter spilled a kettle over her arm and the burn is huge", BURNS),
    ("heart attack please help", HEART),
    ("is this a heart attack my chest is so tight and my arm hurts", HEART),
    ("my mum just collapsed in the kitchen", UNRESPONSIVE),
    ("i took 20 paracetamol", OVERDOSE),
    ("i keep thinking about suicide", SELF_HARM),
    ("my friend is threatening to kill herself", SELF_HARM),
    ("my son has a high fever, a stiff neck and is really drowsy", MENINGITIS),
    ("my 2 month old is burning up", BABY_FEVER),
    ("my wife is fitting and wont stop", SEIZURE),
    ("i got stung by a wasp and my throat feels tight", ANAPHYLAXIS),
    ("my arm and face are numb on one side and i cant talk properly", STROKE),
    ("what is wrong with me my chest is crushing and my left arm is numb", HEART),
    ("whats happening to my dad he cant lift his arm and his face is drooping", STROKE),
]

# Questions about the same conditions, and everyday questions: none of these is an emergency.
NEGATIVES: list[str] = [
    "How can I lower my risk of a heart attack?",
    "What rehab helps after a stroke?",
    "what is anaphylaxis",
    "how long does a migraine last",
    "my grandfather had a stroke 5 years ago, what diet helps",
    "what are the signs of a heart attack in women",
    "what are the symptoms of a stroke",
    "how do i prevent choking in toddlers",
    "what is the heimlich manoeuvre",
    "what causes asthma",
    "shortness of breath when i run up stairs, is that normal?",
    "what is sepsis",
    "how is meningitis spread",
    "is there a vaccine for meningitis",
    "how long do concussion symptoms last",
    "can you sleep after hitting your head",
    "is spotting normal in early pregnancy",
    "is high blood pressure in pregnancy dangerous",
    "how do i treat a minor burn",
    "how long does a second degree burn take to heal",
    "how much paracetamol can i take in a day",
    "what is the maximum dose of ibuprofen",
    "can stress cause seizures",
    "my sister had a seizure last year, can she drive?",
    "what does a panic attack feel like",
    "why do my gums bleed when i brush my teeth",
    "how do i stop a nosebleed",
    "what temperature should a newborn's room be",
    "how often should a 2 week old feed",
    "is aspirin good for preventing heart attacks",
    "what foods lower cholesterol",
    "how common are strokes in people under 40",
    "what does slurred speech mean in someone who is drunk",
    "my grandad is recovering from a heart attack, when can he drive",
    "what are the signs of meningitis in babies",
    "how do you use an epipen",
    "can you grow out of a peanut allergy",
    "hay fever makes my eyes itchy what can i take",
    "how do carbon monoxide detectors work",
    "how long does food poisoning last",
    "is it safe to take ibuprofen with a cold",
    "i slept funny and now have a stiff neck",
    "my husband stops breathing for a few seconds when he snores, could it be sleep apnoea",
    "i choked on my water earlier but im fine now",
    "what is a thunderclap headache",
    "my mum had sepsis last year and is still tired",
    "can a uti turn into sepsis",
    "what is the difference between a heart attack and cardiac arrest",
    "i burnt my tongue on hot coffee",
    "does sunburn cause skin cancer",
    "how do i get rid of a tension headache",
    "why do i get headaches after drinking coffee",
    "i have a sore throat and a runny nose",
    "my knee hurts when i climb stairs",
    "how much water should i drink a day",
    "what are the side effects of statins",
    "what age should kids get the mmr vaccine",
    "what is a good bedtime routine for a toddler",
    "how can i help my dad recover after his stroke",
    "my face feels odd on one side after the dentist",
    "my baby is 5 months old and has a fever of 38",
    "i bumped my head yesterday and have a small lump",
    "what is a febrile seizure",
    "my chest feels tight when im anxious",
    "i have a small burn from the oven",
    "i spilled hot coffee on my hand",
    "what helps chest pain from a pulled muscle",
    "can i take ibuprofen if i am pregnant",
    "are grapes a choking hazard for toddlers",
    "i get heavy periods with clots",
    "my son has a stiff neck from sleeping badly",
    "can high blood pressure cause a stroke",
    "what is the survival rate for sepsis",
    "what happens if a baby swallows a small coin",
    "my toddler bumped her head but is playing normally",
]


def load_fixture() -> list[dict]:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


def rule_objects(entries: list[dict]) -> list[SimpleNamespace]:
    return [SimpleNamespace(pk=entry["pk"], **entry["fields"]) for entry in entries]


@pytest.fixture(scope="module")
def rules() -> list[CompiledEmergencyRule]:
    return compile_rules(rule_objects(load_fixture()))


def make_rule(**overrides: object) -> SimpleNamespace:
    fields = {
        "pk": 1,
        "name": "Test rule",
        "patterns": r"\bred flag\b",
        "response": "Call {number} now.",
        "priority": 0,
        "enabled": True,
    }
    fields.update(overrides)
    return SimpleNamespace(**fields)


# --- The curated regression set -------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), POSITIVES, ids=[text for text, _ in POSITIVES])
def test_it_flags_emergencies_with_the_right_rule(rules: list[CompiledEmergencyRule], text: str, expected: str) -> None:
    match = find_emergency(text, rules)
    assert match is not None, f"not flagged: {text!r} (normalised: {normalise(text)!r})"
    assert match.name == expected


@pytest.mark.parametrize("text", NEGATIVES, ids=NEGATIVES)
def test_it_does_not_flag_educational_or_everyday_questions(rules: list[CompiledEmergencyRule], text: str) -> None:
    match = find_emergency(text, rules)
    assert match is None, f"flagged as {match.name if match else ''!r}: {text!r} (normalised: {normalise(text)!r})"


def test_it_catches_every_emergency_and_raises_no_false_alarms(rules: list[CompiledEmergencyRule]) -> None:
    caught = sum(find_emergency(text, rules) is not None for text, _ in POSITIVES)
    false_alarms = sum(find_emergency(text, rules) is not None for text in NEGATIVES)
    recall = caught / len(POSITIVES)
    false_alarm_rate = false_alarms / len(NEGATIVES)
    print(
        f"\ntriage: recall {recall:.3f} ({caught}/{len(POSITIVES)}), "
        f"false alarms {false_alarm_rate:.3f} ({false_alarms}/{len(NEGATIVES)})"
    )
    assert len(POSITIVES) >= 40
    assert len(NEGATIVES) >= 40
    assert recall == 1.0
    assert false_alarms == 0


def test_it_flags_self_harm_intent_even_in_an_educational_question(rules: list[CompiledEmergencyRule]) -> None:
    match = find_emergency("what is the best way to tell my gp i want to kill myself", rules)
    assert match is not None
    assert match.name == SELF_HARM


def test_it_flags_an_educational_question_when_it_says_it_is_happening_now(
    rules: list[CompiledEmergencyRule],
) -> None:
    assert find_emergency("what are the symptoms of a stroke", rules) is None
    match = find_emergency("what are the symptoms of a stroke, i think my dad is having one right now", rules)
    assert match is not None
    assert match.name == STROKE


def test_it_prefers_the_higher_priority_rule_when_several_match(rules: list[CompiledEmergencyRule]) -> None:
    match = find_emergency("my friend took too many pills and wont wake up", rules)
    assert match is not None
    assert match.name == UNRESPONSIVE


def test_it_does_not_flag_empty_text(rules: list[CompiledEmergencyRule]) -> None:
    assert find_emergency("", rules) is None
    assert find_emergency("  ?!  ", rules) is None


# --- The fixture ----------------------------------------------------------------------------------


def test_it_ships_a_rule_for_every_required_red_flag() -> None:
    entries = load_fixture()
    names = {entry["fields"]["name"] for entry in entries}
    required = {
        HEART,
        STROKE,
        BREATHING,
        CHOKING,
        ANAPHYLAXIS,
        SELF_HARM,
        OVERDOSE,
        BLEEDING,
        UNRESPONSIVE,
        SEIZURE,
        MENINGITIS,
        HEADACHE,
        BABY_FEVER,
        HEAD_INJURY,
        PREGNANCY,
        SEPSIS,
        BURNS,
    }
    assert required <= names
    assert [entry["pk"] for entry in entries] == list(range(1, len(entries) + 1))


def test_it_ships_valid_enabled_rules_with_placeholders() -> None:
    for entry in load_fixture():
        fields = entry["fields"]
        assert entry["model"] == "inference.emergencyrule"
        assert fields["enabled"] is True
        assert fields["hit_count"] == 0
        assert fields["created_at"] == fields["updated_at"] == "2026-12-01T00:00:00Z"
        assert "{number}" in fields["response"], fields["name"]
        for line in fields["patterns"].splitlines():
            re.compile(line)
    by_name = {entry["fields"]["name"]: entry["fields"] for entry in load_fixture()}
    assert "{crisis_line}" in by_name[SELF_HARM]["response"]


def test_it_ranks_self_harm_and_not_breathing_highest() -> None:
    priorities = {entry["fields"]["name"]: entry["fields"]["priority"] for entry in load_fixture()}
    top = max(priorities.values())
    assert priorities[SELF_HARM] == top
    assert priorities[UNRESPONSIVE] == top


# --- compile_rules --------------------------------------------------------------------------------


def test_it_skips_disabled_rules() -> None:
    compiled = compile_rules([make_rule(pk=1, name="On"), make_rule(pk=2, name="Off", enabled=False)])
    assert [rule.name for rule in compiled] == ["On"]
    assert find_emergency("red flag", compile_rules([make_rule(enabled=False)])) is None


def test_it_skips_invalid_patterns_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="inference.triage"):
        compiled = compile_rules([make_rule(patterns="(unclosed\n\\bred flag\\b\n\n")])
    assert len(compiled) == 1
    assert len(compiled[0].patterns) == 1
    assert "(unclosed" in caplog.text
    assert find_emergency("Red flag!", compiled) is not None


def test_it_skips_a_rule_whose_patterns_are_all_invalid(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="inference.triage"):
        compiled = compile_rules([make_rule(patterns="[oops\n*bad")])
    assert compiled == []
    assert "no valid patterns" in caplog.text


def test_it_sorts_rules_by_priority_and_keeps_their_ids() -> None:
    low = make_rule(pk=7, name="Low", priority=1)
    high = SimpleNamespace(id=9, name="High", patterns=r"\bred\b", response="Call {number}.", priority=50, enabled=True)
    compiled = compile_rules([low, high])
    assert [(rule.rule_id, rule.name) for rule in compiled] == [(9, "High"), (7, "Low")]
    assert find_emergency("red flag", compiled).name == "High"


# --- normalise and render_response ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("I can't BREATH!!", "i cant breathe"),
        ("hard to breth", "hard to breathe"),
        ("short of breath", "short of breath"),
        ("my hart hurts", "my heart hurts"),
        ("Brething is hard", "breathing is hard"),
        ("baby is chocking", "baby is choking"),
        ("he's not concious", "hes not conscious"),
        ("having a siezure", "having a seizure"),
        ("I think it's a stroek", "i think its a stroke"),
        ("anaphalaxis?", "anaphylaxis"),
        ("feeling sucidal", "feeling suicidal"),
        ("I cannot   move", "i cant move"),
        ("fever of 38.5, help", "fever of 38.5 help"),
        ("don’t know", "dont know"),
    ],
    ids=lambda value: value,
)
def test_it_normalises_case_punctuation_and_typos(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


def test_it_fills_the_emergency_number_and_crisis_line() -> None:
    rule = CompiledEmergencyRule(
        rule_id=1,
        name="Crisis",
        response="Call {crisis_line} or {number} now. Keep {braces} as they are.",
        priority=100,
        patterns=(),
    )
    text = render_response(rule, number="999", crisis_line="116 123")
    assert text == "Call 116 123 or 999 now. Keep {braces} as they are."


def test_it_fills_every_fixture_response_without_leaving_placeholders(rules: list[CompiledEmergencyRule]) -> None:
    for rule in rules:
        text = render_response(rule, number="911", crisis_line="988")
        assert "{" not in text, rule.name
        assert "911" in text, rule.name

"""Triage over the shipped concepts and red-flag rules, read from the fixtures (no database).

The phrasings here come from fixtures/triage_phrasings.jsonl, which is also classifier training data:
they are an in-sample regression set, not a measure of how triage generalises. The held-out figures come
from bench/triage_eval.py on bench/data/triage_heldout*.jsonl: each scored once before it was read.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

from inference.triage import CONCEPTS_FIXTURE, RULES_FIXTURE, normalise
from inference.triage.corpus import hand_written
from inference.triage.engine import Triage
from inference.triage.matcher import CONTEXT, ConditionError, condition_names, evaluate, parse_condition

ROOT = Path(__file__).resolve().parent.parent
HELDOUT = ROOT / "bench" / "data" / "triage_heldout.jsonl"
LABELLED = ROOT / "bench" / "data" / "labelled_questions.jsonl"

PHRASINGS = hand_written()
EMERGENCIES = [example for example in PHRASINGS if example.level == "emergency"]
NOT_EMERGENCIES = [example for example in PHRASINGS if example.level != "emergency"]


def fixture(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))


def concept(name: str, synonyms: str, kind: str = "symptom", ranges: str = "") -> SimpleNamespace:
    return SimpleNamespace(name=name, kind=kind, synonyms=synonyms, ranges=ranges, enabled=True)


def rule(name: str, condition: str, level: str = "emergency", **fields: object) -> SimpleNamespace:
    values = {"pk": 1, "response": "Call {number}.", "priority": 0, "enabled": True, "patterns": ""}
    values.update(fields)
    return SimpleNamespace(name=name, condition=condition, level=level, **values)


# --- the three levels ------------------------------------------------------------------------------


@pytest.mark.parametrize("example", EMERGENCIES, ids=[example.text[:60] for example in EMERGENCIES])
def test_the_rules_flag_each_hand_written_emergency(shipped_triage: Triage, example) -> None:
    decision = shipped_triage.decide(example.text)
    assert decision.level == "emergency", f"{example.text!r}: {decision.reading.concepts}"
    if example.kind != "hand-written":  # the kind names the rule that should answer
        assert decision.rule.name == example.kind


@pytest.mark.parametrize("example", NOT_EMERGENCIES, ids=[example.text[:60] for example in NOT_EMERGENCIES])
def test_the_rules_do_not_flag_questions_past_events_negations_or_everyday_problems(
    shipped_triage: Triage, example
) -> None:
    decision = shipped_triage.decide(example.text)
    assert decision.level != "emergency", f"{example.text!r} fired {decision.rule.name}"


@pytest.mark.parametrize(
    "text",
    [
        "my calf is swollen and red since the long flight home",
        "I'm 28 weeks pregnant and it burns when I pee",
        "there is a red streak going up my arm from the cut",
    ],
)
def test_it_gives_urgent_for_problems_that_need_a_doctor_today(shipped_triage: Triage, text: str) -> None:
    decision = shipped_triage.decide(text)
    assert decision.level == "urgent", decision.reading.concepts
    assert "{number}" in decision.rule.response or "today" in decision.rule.response


def test_it_gives_routine_for_an_everyday_question(shipped_triage: Triage) -> None:
    decision = shipped_triage.decide("how much water should I drink on a hot day")
    assert decision.level == "routine"
    assert decision.rule is None


# --- intent, tense and negation --------------------------------------------------------------------


def test_it_reads_a_question_about_a_condition_as_a_question(shipped_triage: Triage) -> None:
    decision = shipped_triage.decide("what are the signs of a heart attack with chest pain spreading to the arm?")
    assert decision.reading.about
    assert decision.level == "routine"


def test_a_question_becomes_a_report_when_it_says_it_is_happening_now(shipped_triage: Triage) -> None:
    text = "what are the symptoms of a stroke, i think my dad is having one right now, his face is drooping"
    decision = shipped_triage.decide(text)
    assert not decision.reading.about
    assert decision.rule.name == "Stroke (FAST)"


def test_it_flags_self_harm_intent_even_worded_as_a_question(shipped_triage: Triage) -> None:
    decision = shipped_triage.decide("what is the best way to tell my gp i want to kill myself")
    assert decision.reading.about
    assert decision.rule.name == "Suicidal thoughts and self-harm"


def test_it_sets_aside_a_negated_red_flag(shipped_triage: Triage) -> None:
    decision = shipped_triage.decide("no chest pain and not short of breath, just a tickly cough")
    assert decision.level == "routine"
    assert decision.reading.set_aside["chest_discomfort"] == "negated"


def test_a_negation_stays_inside_its_clause(shipped_triage: Triage) -> None:
    decision = shipped_triage.decide("no fever, but crushing chest pain and sweating")
    assert decision.rule.name == "Heart attack"


def test_it_sets_aside_a_red_flag_from_years_ago_unless_it_is_back_now(shipped_triage: Triage) -> None:
    past = shipped_triage.decide("I had a seizure as a teenager, can I learn to drive?")
    assert past.level == "routine"
    assert past.reading.set_aside["seizure_active"] == "past"
    again = shipped_triage.decide("I had seizures as a teenager and now my son is having a seizure")
    assert again.rule.name == "Long or first seizure"


def test_it_does_not_treat_uncertainty_as_negation(shipped_triage: Triage) -> None:
    decision = shipped_triage.decide("i dont know if its serious but my chest is crushing")
    assert decision.rule.name == "Heart attack"


def test_an_if_makes_a_concept_hypothetical(shipped_triage: Triage) -> None:
    decision = shipped_triage.decide("how can I tell if my baby is choking")
    assert decision.level == "routine"


def test_a_resolved_concept_does_not_fire(shipped_triage: Triage) -> None:
    assert shipped_triage.decide("the bleeding was heavy but it has stopped now").level != "emergency"


@pytest.mark.parametrize(
    ("text", "rule_name"),
    [
        ("i cant breathe anymore", "Severe breathing difficulty"),
        ("he isnt breathing any more", "Unresponsive or not breathing"),
        ("she wont wake up anymore", "Unresponsive or not breathing"),
        ("i cant see out of my right eye anymore", "Sudden loss of vision"),
        ("i dont want to be alive anymore", "Suicidal thoughts and self-harm"),
        ("my chest hurts and i cant breathe anymore", "Severe breathing difficulty"),
    ],
)
def test_anymore_after_a_negative_red_flag_says_it_goes_on(shipped_triage: Triage, text: str, rule_name: str) -> None:
    # "anymore" means "no longer" only with a negation of its own; "cant breathe" carries its own.
    decision = shipped_triage.decide(text)
    assert decision.level == "emergency" and decision.rule.name == rule_name


def test_anymore_with_a_negation_of_its_own_ends_the_red_flag(shipped_triage: Triage) -> None:
    for text in ("my chest pain doesnt bother me anymore", "the crushing chest pain is not there any more"):
        reading = shipped_triage.decide(text).reading
        assert [o.status for o in reading.occurrences if o.concept == "chest_discomfort"] == ["resolved"], text
    assert shipped_triage.decide("the crushing chest pain is not there any more").level == "routine"


SPINE = "Back pain with numbness or loss of bladder control"
HEAD_INJURY = "Head injury with confusion or vomiting"
DROWSY_CHILD = "Drowsy child who is not feeding or drinking"
LUNG_CLOT = "Possible blood clot in the lung"


@pytest.mark.parametrize(
    ("text", "rule_name"),
    [
        ("my back hurts and i cant feel my legs", SPINE),
        ("my backs been sore for days and now i havent been able to pee", SPINE),
        ("my son got into his grans tablets, we dont know how many he had", "Overdose and poisoning"),
        ("she swallowed a handful of her sleeping pills", "Overdose and poisoning"),
        ("my daughter was hit by a car and her arm is bent the wrong way", "Serious injury"),
        ("the babys soft spot is bulging and she has a temperature", "Meningitis signs"),
        ("grandad banged his head and keeps asking the same question over and over", HEAD_INJURY),
        ("ive said my goodbyes to everyone", "Suicidal thoughts and self-harm"),
        ("my dad is clutching his chest and sweating", "Heart attack"),
        ("i had an antibiotic and now my tongue feels thick", "Anaphylaxis"),
        ("my blood sugar is 25 and i feel sick and confused", "Very high blood sugar with vomiting or confusion"),
        ("my husband was just hit by a car", "Serious injury"),
        ("my son fell off the roof and cant move", "Serious injury"),
        ("neighbour electrocuted", "Electric shock"),
        ("my pulse oximeter says 88", "Low oxygen level"),
        ("sudden tearing pain in my back going through to my chest", "Sudden tearing chest or back pain"),
        ("my son swallowed something and now he is vomiting", "Swallowed object with symptoms"),
        ("libre says 27 and i am throwing up", "Very high blood sugar with vomiting or confusion"),
        ("my daughter is 2 and very sleepy and not drinking, no wee since morning", DROWSY_CHILD),
        ("toddler swallowed pills", "Overdose and poisoning"),
        ("my daughter swallowed half a bottle of calpol", "Overdose and poisoning"),
        ("my toddler drank some of my medicine", "Overdose and poisoning"),
        ("baby not feeding and very sleepy", DROWSY_CHILD),
        # Dialects: Nigerian Pidgin, Jamaican, Scots.
        ("my mama no fit talk again and one side of her body no dey move", "Stroke (FAST)"),
        ("mi granny chest a hurt her and she a sweat", "Heart attack"),
        ("ma wee boy drank the stuff fae under the sink", "Overdose and poisoning"),
        ("my pikin don dey shake since, e no stop", "Long or first seizure"),
        ("she sent me a goodbye text and now she isnt picking up", "Suicidal thoughts and self-harm"),
        ("said goodbye to me and says shes taken something", "Suicidal thoughts and self-harm"),
        ("tight chest for 20 mins now and its not easing off with rest", "Heart attack"),
        ("his chest pain came back and the spray isnt touching it and hes grey", "Heart attack"),
        ("flew back from spain yesterday, sudden pain in my chest when i breathe in", LUNG_CLOT),
        ("my calf is swollen and now im coughing up blood and short of breath", LUNG_CLOT),
        ("got bit by a snake on my ankle", "Snake bite"),
        ("bad back for a week and now i cant feel my bum when i wipe", SPINE),
        ("purple spotty rash on his legs and a fever", "Meningitis signs"),
        ("her breathing is really slow, like once every 10 seconds", "Severe breathing difficulty"),
        ("my flatmate took loads of paracetamol with vodka", "Overdose and poisoning"),
        ("his lips are puffing up after eating kiwi", "Anaphylaxis"),
        # The attack review: hypothetical-sounding words do not hide the report that follows.
        ("what do i do before the ambulance arrives hes not breathing", "Unresponsive or not breathing"),
        ("how do you tell someone is choking my son is grabbing his throat and cant breathe", "Choking"),
        ("i want to learn how to help my dad he has crushing chest pain right now", "Heart attack"),
        ("his leg is pouring blood and it hasnt stopped bleeding", "Severe bleeding"),
        ("nose bleed for 2 hours and it still hasnt stopped bleeding, im on warfarin", "Severe bleeding"),
        ("she fainted and still hasnt come round after 5 minutes", "Unresponsive or not breathing"),
        ("my pulse is 190 on my watch and everything is going grey", "Racing heart with fainting or chest pain"),
        ("banging headache, being sick and her neck is really stiff", "Meningitis signs"),
        ("my baby is 6 weeks old and has been vomiting green", "Green vomit in a baby or young child"),
        ("my mum fell over and cant get up", "Possible broken hip"),
        ("after the ladder fall theres clear fluid coming out of his nose and hes confused", "Serious injury"),
        ("my horse threw me and i cant feel my legs", "Serious injury"),
        ("my friend got punched and is now confused and vomiting", HEAD_INJURY),
        ("my dog licked my sisters face and now her lips are swelling up and she is wheezing", "Anaphylaxis"),
        ("my dad has a siezure and he is foaming at the mouth", "Long or first seizure"),
        ("my friend took fentanyl and is barely responding", "Unresponsive or not breathing"),
        ("my mate took something at a festival and is burning up and twitching", "Overdose and poisoning"),
        ("she fell over and isnt getting up", "Unresponsive or not breathing"),
        # The attack review's emergencies that only the old classifier caught: the rules read them now.
        ("how do i tell whether my baby is breathing she is blue and floppy", "Severe breathing difficulty"),
        ("is it a heart attack if my chest feels squeezed and my left arm tingles?", "Heart attack"),
        ("my son is haveing a seizur on the floor", "Long or first seizure"),
        ("an ache in the middle of my chest that wont go away and i feel clammy", "Heart attack"),
        # Set 8's misses, reworded.
        ("she says its only heartburn but shes gone grey and sweaty and the rennie isnt touching it", "Heart attack"),
        ("flew home from thailand today, sharp pain when i breathe in and coughing up a little blood", LUNG_CLOT),
        ("my toddlers had no wet nappy all day, very sleepy and wont drink", DROWSY_CHILD),
        ("he can only say a few words at a time and his inhaler isnt doing anything", "Severe breathing difficulty"),
        ("my sick looks like coffee granules and i feel faint", "Severe bleeding"),
        ("my pikin don swallow one small battery", "Child swallowed a battery, magnet or chemical"),
        # The fresh eye's: asking how much it takes to die is a crisis; what a child swallows, a floppy
        # baby and confusion with slurred speech have their own advice.
        ("how many paracetamol does it take to die", "Suicidal thoughts and self-harm"),
        ("whats a lethal dose of paracetamol", "Suicidal thoughts and self-harm"),
        ("my 2 year old swallowed a button battery", "Child swallowed a battery, magnet or chemical"),
        ("my toddler drank some bleach", "Child swallowed a battery, magnet or chemical"),
        ("my toddler swallowed lots of pills", "Overdose and poisoning"),
        ("my baby is floppy", "Floppy baby or child"),
        ("my nan is confused and her speech is slurred", "Stroke (FAST)"),
        # The attack review's misses, reworded.
        ("he swallowed a load of his antidepressants after a row, about 15, says hes fine", "Overdose and poisoning"),
        ("my daughter took a bunch of tablets, she doesnt know how many", "Overdose and poisoning"),
        ("i gave my toddler three times the calpol dose by accident", "Overdose and poisoning"),
        ("everyone would be better without me and i know how i would do it", "Suicidal thoughts and self-harm"),
        ("my wife says its indigestion but shes grey and sweaty and its been two hours", "Heart attack"),
        ("pain in my jaw and left arm and i feel sick", "Heart attack"),
        ("splashed oven cleaner in my eye", "Chemical in the eye"),
        ("her asthma pump isnt working and she can hardly talk", "Severe breathing difficulty"),
        ("my baby hasnt had a wet nappy since this morning and is really sleepy", DROWSY_CHILD),
        ("im 34 weeks pregnant and i havent felt the baby move today", "Baby moving less in pregnancy"),
        ("hes gone a strange colour and isnt answering me, his chest isnt moving", "Unresponsive or not breathing"),
        # The second look's misses, reworded.
        ("how many sleeping pills would kill me", "Suicidal thoughts and self-harm"),
        ("how much aspirin is lethal", "Suicidal thoughts and self-harm"),
        ("my brother took loads of his sertraline", "Overdose and poisoning"),
        ("my little girl bit into a dishwasher tablet", "Child swallowed a battery, magnet or chemical"),
        ("my 4yo swallowed a button battery", "Child swallowed a battery, magnet or chemical"),
        ("splashed drain unblocker in my eye", "Chemical in the eye"),
        ("38 weeks and hardly any kicks today", "Baby moving less in pregnancy"),
        ("my newborn is floppy and isnt feeding", "Floppy baby or child"),
        ("my dads words are coming out jumbled and hes confused", "Stroke (FAST)"),
        ("pain in his jaw and down his left arm and hes been sick", "Heart attack"),
    ],
)
def test_it_knows_red_flags_as_people_word_them(shipped_triage: Triage, text: str, rule_name: str) -> None:
    decision = shipped_triage.decide(text)
    assert decision.level == "emergency" and decision.rule.name == rule_name, decision.reading.concepts


@pytest.mark.parametrize(
    "text",
    [
        "how do i claim insurance after being hit by a car",
        "my tongue has a thick white coating after antibiotics",
        "feels like someone is sitting on my head",
        "my mum keeps asking me the same thing about her covid jab",
        "im giving away my things to charity",
        "toddler not feeding himself yet is that normal",
        "my son took his antibiotics this morning",
        "ate too much chocolate, feel fine now",
        "i drank a bottle of water after the gym",
        "my inhaler is useless for my cough should i change",
        "my son fell off a ladder at school last week, his wrist is healing",
        "my baby took her medicine",
        "my oxygen is 97 is that ok",
        "my o2 phone bill is 60 pounds",
        "my pulse ox shows 60 bpm",
        "i took all my tablets this morning, can i have a coffee",
        "i watched a video of someone being hit by a car and now i have a panic attack",
        "my toddler has a cold, is a bit sleepy and not drinking as much as usual",
        "i had chest pain years ago, can i fly",
        "stubbed my toe on the bed frame, bit bruised but i can walk on it fine",  # not "stabbed"
        # Set 8's false alarms, reworded: "I'll" is not "ill", a drink that went down the wrong way, a
        # joke, a film.
        "my sister says ill get a blood clot if i go on the pill, is that right",
        "choked on my tea this morning, coughed it up and fine now",
        "overdosed on chocolate at the weekend lol",
        "in the film the hero gets stabbed, would he really bleed that much",
        "saw a show where a man was stabbed, do you pull the knife out",
        "my son has been walking with a limp since his match",  # a limp, not limp
        "my dad is not answering his phone",
        "my poo has gone black since starting iron tablets",
        "how do i do cpr on an adult, its for a first aid course",
        "heartburn again tonight, a gaviscon sorted it",
        "i feel like im dying with this man flu",
        "my boss would kill me if i was late again",
        "i ate loads of my chocolate eggs",
        "my baby has a floppy head when i pick her up, is that normal at 2 weeks",
    ],
)
def test_phrases_near_a_red_flag_do_not_raise_one(shipped_triage: Triage, text: str) -> None:
    decision = shipped_triage.decide(text)
    assert decision.level != "emergency", f"{text!r} fired {decision.rule.name}"


def test_a_stroke_on_one_side_is_a_stroke_even_with_numb_legs(shipped_triage: Triage) -> None:
    decision = shipped_triage.decide("my dad suddenly cant move his arm on one side and cant feel his legs")
    assert decision.rule.name == "Stroke (FAST)"


def test_feeling_fine_after_an_overdose_does_not_end_it(shipped_triage: Triage) -> None:
    # What was taken, and how much, is not over when the person feels fine: paracetamol harms later.
    decision = shipped_triage.decide("i took 30 paracetamol this morning, i feel fine now so is it ok")
    assert decision.level == "emergency" and decision.rule.name == "Overdose and poisoning"
    # A symptom still can be over.
    assert shipped_triage.decide("i felt faint and sick earlier but im fine now").level == "routine"


def test_a_baby_who_wont_feed_while_vomiting_needs_a_doctor_today(shipped_triage: Triage) -> None:
    decision = shipped_triage.decide("my baby has been vomiting all day and wont feed")
    assert decision.level == "urgent" and decision.rule.name == "Dehydration in a child"


def test_blood_in_the_name_of_a_test_or_a_medicine_is_not_bleeding(shipped_triage: Triage) -> None:
    for text in ("my mum is on blood thinners, what are the risks", "my blood pressure is high", "i gave blood today"):
        assert "bleeding" not in shipped_triage.decide(text).reading.concepts, text
    assert "bleeding" in shipped_triage.decide("there is blood in my pee").reading.concepts


def test_everyday_words_that_once_read_as_red_flags_do_not(shipped_triage: Triage) -> None:
    # A mosquito bite is not a spreading infection.
    assert not shipped_triage.decide("bitten by a mosquito and it itches").reading.reports_symptom


# --- measurements and typos ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("my 6 week old has a temperature of 38.4", "emergency"),
        ("my 6 week old has a temperature of 37.4", "routine"),
        ("my 5 month old has a temperature of 38.4", "urgent"),
        # A high temperature alone in an older child is for the fever answer, not a "get checked today".
        ("my 3 year old has a temperature of 38.5 what should I do", "routine"),
        ("my 3 year old has a temperature of 39.5", "urgent"),
        ("newborn temp 38,2 C", "emergency"),
    ],
)
def test_it_reads_ages_and_temperatures_in_range(shipped_triage: Triage, text: str, level: str) -> None:
    assert shipped_triage.decide(text).level == level


def test_it_repairs_a_one_letter_typo_in_a_concept_word(shipped_triage: Triage) -> None:
    assert "unresponsive" in shipped_triage.matcher.repair(" he is unresponsve ")
    assert shipped_triage.decide("he is unresponsve on the floor").level == "emergency"


def test_typo_repair_leaves_ordinary_words_alone(shipped_triage: Triage) -> None:
    assert shipped_triage.matcher.repair(" are grapes ok for toddlers ") == " are grapes ok for toddlers "
    # Everyday words one letter from a symptom word: painting the kitchen is not fainting...
    assert shipped_triage.matcher.repair(" we want to paint the kitchen ") == " we want to paint the kitchen "
    # ...and new brake pads are not a broken bone, while "i brake my wrist" is still read as one.
    for text in ("i need new brake pads", "how do i change the brake pads on a car", "we want to paint the kitchen"):
        assert shipped_triage.decide(text).level == "routine"
    assert shipped_triage.decide("i think i brake my wrist and its all bent").level != "routine"
    # Words people mistype for a red flag stay repairable.
    assert shipped_triage.decide("my baby is barley breathing").level == "emergency"
    # One change, not two: "snezing" shares a letter-less form with "seizing" but is a sneeze.
    assert shipped_triage.matcher.repair(" cant stop snezing ") == " cant stop snezing "
    assert shipped_triage.decide("please help my daughter cant stop snezing and its killing me").level == "routine"


def test_typo_repair_still_reads_two_letter_slips_of_a_red_flag_word(shipped_triage: Triage) -> None:
    # The attack review's examples: "throte", "sezuire" and "purpul" are two changes away, and no
    # ordinary word is as near.
    assert shipped_triage.decide("throte is closing up after eating cashews").level == "emergency"
    assert shipped_triage.decide("my son is having a sezuire").level == "emergency"
    assert shipped_triage.decide("my baby has purpul spots and is hot").level == "emergency"


@pytest.mark.parametrize(
    "text",
    [
        "how do you do cpr on a baby? want to learn before my daughter arrives",
        "my dad had a heart attack 3 yrs ago and hes doing great now, what should his cholesterol be",
        "chest pain when i cough for 3 days, wont go away",
        "im done with work today",
    ],
)
def test_learning_cpr_and_past_events_are_not_emergencies(shipped_triage: Triage, text: str) -> None:
    assert shipped_triage.decide(text).level != "emergency", shipped_triage.decide(text).reading.concepts


# --- concepts and conditions -----------------------------------------------------------------------


def test_and_binds_tighter_than_or_in_a_condition() -> None:
    expression = parse_condition("a OR b AND NOT (c or d)")
    assert evaluate(expression, {"a"})
    assert evaluate(expression, {"b"})
    assert not evaluate(expression, {"b", "d"})
    assert condition_names(expression) == {"a", "b", "c", "d"}


@pytest.mark.parametrize("source", ["", "a AND", "(a OR b", "a b", "a AND OR b", "a & b"])
def test_it_refuses_an_unreadable_condition(source: str) -> None:
    with pytest.raises(ConditionError):
        parse_condition(source)


def test_phrases_match_whole_words_with_endings_gaps_and_exclusions() -> None:
    triage = Triage.from_rows(
        [concept("pain", "pain ... chest\nvomit*\n!chest pain clinic"), concept("red", "red flag")],
        [rule("Any", "pain")],
    )
    assert triage.decide("pain in my chest").level == "emergency"
    assert triage.decide("he keeps vomiting").level == "emergency"
    assert triage.decide("painful").level == "routine"
    assert triage.decide("the chest pain clinic phoned").level == "routine"


def test_a_measurement_needs_a_number_in_range_near_its_phrase() -> None:
    triage = Triage.from_rows(
        [concept("fever", "temperature\ntemp", kind="measurement", ranges="38-43")], [rule("Fever", "fever")]
    )
    assert triage.decide("temperature of 39.1").level == "emergency"
    assert triage.decide("39 temp").level == "emergency"
    assert triage.decide("temperature of 37").level == "routine"
    assert triage.decide("38 year old with a temperature").level == "routine"


def test_it_skips_a_rule_it_cannot_read_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="inference.triage"):
        triage = Triage.from_rows([concept("red", "red flag")], [rule("Broken", "red AND ("), rule("Fine", "red")])
    assert [compiled.name for compiled in triage.rules] == ["Fine"]
    assert "cannot read the condition" in caplog.text


def test_it_warns_about_a_condition_naming_an_unknown_concept(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="inference.triage"):
        triage = Triage.from_rows([concept("red", "red flag")], [rule("Typo", "red OR rde")])
    assert "unknown concepts rde" in caplog.text
    assert triage.decide("a red flag").level == "emergency"


def test_disabled_concepts_and_rules_are_left_out() -> None:
    off = SimpleNamespace(name="red", kind="symptom", synonyms="red flag", ranges="", enabled=False)
    assert Triage.from_rows([off], [rule("R", "red")]).decide("red flag").level == "routine"
    assert Triage.from_rows([concept("red", "red flag")], [rule("R", "red", enabled=False)]).rules == []


def test_an_emergency_rule_wins_over_an_urgent_one_whatever_the_priority() -> None:
    triage = Triage.from_rows(
        [concept("red", "red flag")],
        [rule("Urgent", "red", level="urgent", priority=99), rule("Emergency", "red", priority=1)],
    )
    assert triage.decide("red flag").rule.name == "Emergency"


@pytest.mark.parametrize("text", ["", "   ?!  ", "\x00\x01", "🚑🚑🚑", "a" * 20000, "38.5.6.7", "| | |"])
def test_odd_input_reads_as_routine_without_raising(shipped_triage: Triage, text: str) -> None:
    assert shipped_triage.decide(text).level in {"routine", "urgent", "emergency"}


# --- the shipped data ------------------------------------------------------------------------------


def test_every_rule_condition_names_only_shipped_concepts() -> None:
    names = {entry["fields"]["name"] for entry in fixture(CONCEPTS_FIXTURE)}
    assert set(CONTEXT) <= names
    for entry in fixture(RULES_FIXTURE):
        fields = entry["fields"]
        assert condition_names(parse_condition(fields["condition"])) <= names, fields["name"]


def test_it_ships_emergency_and_urgent_rules_with_placeholders() -> None:
    entries = fixture(RULES_FIXTURE)
    assert [entry["pk"] for entry in entries] == list(range(1, len(entries) + 1))
    levels = {entry["fields"]["level"] for entry in entries}
    assert levels == {"emergency", "urgent"}
    for entry in entries:
        fields = entry["fields"]
        assert fields["enabled"] is True and fields["hit_count"] == 0
        if fields["level"] == "emergency":
            assert "{number}" in fields["response"], fields["name"]
    by_name = {entry["fields"]["name"]: entry["fields"] for entry in entries}
    assert "{crisis_line}" in by_name["Suicidal thoughts and self-harm"]["response"]
    required = {
        "Heart attack",
        "Stroke (FAST)",
        "Sudden loss of vision",
        "Sepsis signs",
        "Low blood sugar with confusion",
        "Heavy bleeding in pregnancy",
        "Severe burns",
        "Open fracture",
        "Rigid belly or severe abdominal pain",
        "Sudden testicle pain",
        "Possible blood clot in the leg",
        "Urine infection with fever in pregnancy",
    }
    assert required <= set(by_name)


@pytest.mark.parametrize("path", sorted(HELDOUT.parent.glob("triage_heldout*.jsonl")), ids=lambda path: path.stem)
def test_each_held_out_set_is_large_enough_and_shares_no_text_with_the_training_phrasings(path: Path) -> None:
    heldout = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    levels = [row["level"] for row in heldout]
    assert levels.count("emergency") >= 60
    assert levels.count("routine") >= 60
    assert levels.count("urgent") >= 15
    training = {normalise(example.text) for example in PHRASINGS}
    assert not training & {normalise(row["text"]) for row in heldout}


def test_the_triage_phrasings_share_no_question_with_the_labelled_evaluation_set() -> None:
    labelled = {normalise(json.loads(line)["question"]) for line in LABELLED.read_text("utf-8").splitlines() if line}
    assert not labelled & {normalise(example.text) for example in PHRASINGS}


# --- normalise -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("I can't BREATH!!", "i cant breathe"),
        ("my hart hurts", "my heart hurts"),
        ("he's not concious", "hes not conscious"),
        ("I cannot   move", "i cant move"),
        ("fever of 38.5, help", "fever of 38.5 help"),
        ("don’t know", "dont know"),
    ],
)
def test_it_normalises_case_punctuation_and_typos(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


@pytest.mark.parametrize(
    "text",
    ["my wife has the worst headache ever", "i have the worst headache of my life", "my headache is the worst ever"],
)
def test_the_worst_headache_ever_is_an_emergency_by_the_rules(shipped_triage: Triage, text: str) -> None:
    decision = shipped_triage.decide(text)
    assert decision.level == "emergency" and decision.rule.name == "Sudden worst-ever headache"


def test_a_bad_day_and_a_headache_are_not_the_worst_headache(shipped_triage: Triage) -> None:
    assert shipped_triage.decide("the worst day ever, i have a headache").level == "routine"


@pytest.mark.parametrize(
    "text",
    [
        "life isn't worth living anymore",
        "i just want to go to sleep and not wake up",
        "i just want it all to end",
        "my son doesnt want to live anymore",
        "i feel like everyone would be better off if i was gone",
        "i want to kill myself, i dont care anymore",
        # Hopeless words count with a means or a plan: "no way out" of a car park does not.
        "my friend texted me goodbye and isn't answering",
        "there is no way out for me and i have a rope",
        "i cant take it anymore, ive got the pills ready",
    ],
)
def test_self_harm_in_other_words_gets_the_crisis_answer(shipped_triage: Triage, text: str) -> None:
    decision = shipped_triage.decide(text)
    assert decision.level == "emergency" and decision.rule.name == "Suicidal thoughts and self-harm"


@pytest.mark.parametrize(
    "text",
    [
        "there is no way out of this car park",
        "i am ending things with my boyfriend tonight",
        "we said goodbye at the airport",
        "i'm done with this diet",
    ],
)
def test_hopeless_sounding_words_alone_are_not_a_crisis(shipped_triage: Triage, text: str) -> None:
    assert shipped_triage.decide(text).level == "routine"


@pytest.mark.parametrize(
    "text",
    [
        "my daughter is self harming",
        "how do i support a friend who self harms",
        "my teenager has been cutting her arms",
        "my teenager is cutting herself what do i do",
    ],
)
def test_self_harm_without_intent_to_die_gets_support_today(shipped_triage: Triage, text: str) -> None:
    decision = shipped_triage.decide(text)
    assert decision.level == "urgent" and decision.rule.name == "Self-harm"
    assert decision.rule.response.startswith("For support now, {crisis_line}")


def test_a_question_about_self_harm_with_nobody_doing_it_stays_a_question(shipped_triage: Triage) -> None:
    for text in ("how do i talk to my teenager about self harm", "what are the warning signs of suicide"):
        assert shipped_triage.decide(text).level == "routine", text


@pytest.mark.parametrize(
    "text",
    [
        "my grandad keeps falling over to the left and cant walk straight",
        "my dad is dizzy and keeps falling to one side",
        "he woke up and one side of his body wont move",
        "my husband woke up and cant move his right side",
    ],
)
def test_sudden_loss_of_balance_or_a_side_that_wont_move_is_a_stroke_sign(shipped_triage: Triage, text: str) -> None:
    decision = shipped_triage.decide(text)
    assert decision.level == "emergency" and decision.rule.name == "Stroke (FAST)"


def test_falling_to_one_side_alone_is_not_a_stroke(shipped_triage: Triage) -> None:
    # Its own words say "one side": that must not count as the second sign it needs.
    reading = shipped_triage.decide("my toddler keeps falling to one side").reading
    assert "balance_loss" in reading.present
    assert shipped_triage.decide("my toddler keeps falling to one side").level == "routine"


def test_a_child_who_swallowed_a_magnet_needs_emergency_care(shipped_triage: Triage) -> None:
    decision = shipped_triage.decide("my 2 year old swallowed a magnet")
    assert decision.level == "emergency" and decision.rule.name == "Child swallowed a battery, magnet or chemical"
    assert "paracetamol" not in decision.rule.response  # the overdose advice is about medicines


def test_a_leg_that_looks_shorter_after_a_fall_may_be_a_broken_hip(shipped_triage: Triage) -> None:
    decision = shipped_triage.decide("my grandmother fell and can't get up and her leg looks shorter")
    assert decision.level == "emergency" and decision.rule.name == "Possible broken hip"
    assert shipped_triage.decide("my physio says one leg is shorter than the other").level == "routine"


@pytest.mark.parametrize(
    "text",
    [
        "i dont have any more inhalers and i cant breathe",
        "her face is drooping and she isnt talking properly anymore",
        "my toddler swallowed a magnet and isnt eating anymore",
    ],
)
def test_anymore_does_not_end_a_red_flag_across_another_statement(shipped_triage: Triage, text: str) -> None:
    assert shipped_triage.decide(text).level == "emergency"


def test_breathing_through_a_blocked_nose_is_not_a_breathing_emergency(shipped_triage: Triage) -> None:
    assert shipped_triage.decide("i cant breathe through my nose anymore, its always blocked").level != "emergency"


def test_a_negation_stops_where_another_statement_about_them_starts(shipped_triage: Triage) -> None:
    reading = shipped_triage.decide("my baby isnt crying anymore and is floppy").reading
    assert "drowsy" in reading.present  # floppy is said, not denied
    # "and" before a noun goes on denying: no chest pain and no sweating.
    assert shipped_triage.decide("he doesnt have chest pain and sweating").reading.present.isdisjoint(
        {"chest_discomfort", "sweating"}
    )


def test_aint_is_a_negation_and_aint_breathing_is_not_breathing(shipped_triage: Triage) -> None:
    assert shipped_triage.decide("he aint breathing no more").rule.name == "Unresponsive or not breathing"
    assert shipped_triage.decide("i aint got no chest pain").level == "routine"

import pytest

from inference.text import (
    clean_input,
    pleasantry,
    quality_problem,
    repetition_ratio,
    trim_to_sentences,
)


def test_clean_input_strips_control_characters_and_tidies_spaces():
    assert clean_input("  what\x00 is\x07   asthma?\r\n\n\n\nthanks\u200b ") == "what is asthma?\n\nthanks"


def test_trim_cuts_an_unfinished_last_sentence():
    assert trim_to_sentences("Drink water. Rest well. See a doctor if") == "Drink water. Rest well."


def test_trim_keeps_finished_text_and_text_without_sentences():
    assert trim_to_sentences("Drink water. Rest.") == "Drink water. Rest."
    assert trim_to_sentences("no sentence end here") == "no sentence end here"


def test_the_quality_gate_rejects_empty_short_repetitive_and_echoing_answers():
    question = "what are the symptoms of asthma"
    assert quality_problem("", question) == "empty"
    assert quality_problem("Asthma is bad.", question) == "too short"
    assert quality_problem("rest and water " * 20, question) == "repetitive"
    # A loop inside an otherwise good answer (seen from a trained adapter): refused too.
    assert quality_problem("Sunburn makes the skin red, hot, hot, hot, and sore for days.", question) == "repetitive"
    looped = (
        "See a doctor if you have a high temperature that won't settle, you have a high temperature that won't settle."
    )
    assert quality_problem(looped, question) == "repetitive"
    assert quality_problem("It is very, very common and usually clears up in a week or two.", question) is None
    assert quality_problem("what are the symptoms of asthma what are the symptoms of asthma please", question) in {
        "echo",
        "repetitive",
    }
    assert (
        quality_problem("Asthma causes wheezing, coughing and a tight chest, often worse at night.", question) is None
    )
    assert repetition_ratio("one two three four five six seven eight nine ten") == 0.0


def test_separators_become_spaces_and_invisible_format_characters_go():
    assert clean_input("chest\u2028pain\u2029now\x85please") == "chest pain now please"
    assert clean_input("ki\u00adll my\u00adself") == "kill myself"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("hi", "greeting"),
        ("thanks so much that really helped", "thanks"),
        ("ok bye", "farewell"),
        ("hi my chest hurts", ""),
    ],
)
def test_pleasantry_is_only_for_messages_of_greeting_thanks_or_goodbye_words(text: str, kind: str) -> None:
    assert pleasantry(text) == kind

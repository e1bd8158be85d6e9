"""The classifier: its corpus, its training and disk cache, and its fast scorer. No model downloads."""

from __future__ import annotations

import os
import re

import pytest

from inference import triage
from inference.triage import classifier, corpus


@pytest.fixture(scope="module")
def generated() -> list[corpus.Example]:
    return corpus.generate(
        triage.rows_from_fixture(triage.CONCEPTS_FIXTURE), triage.rows_from_fixture(triage.RULES_FIXTURE)
    )


def test_the_generated_corpus_has_thousands_of_varied_phrasings(generated) -> None:
    texts = [example.text for example in generated]
    assert len(set(texts)) >= 2000
    levels = {example.level for example in generated}
    assert levels == {"emergency", "urgent", "routine"}
    assert any(re.search(r"\bmy (dad|mum|wife|son)\b", text) for text in texts)  # third person
    assert sum("." not in text and "?" not in text for text in texts) > 500  # no punctuation
    assert sum(len(text.split()) > 25 for text in texts) > 100  # long messages, red flag in the middle
    assert any("since one hour" in text or "what i must do" in text for text in texts)  # non-native English
    kinds = {example.kind for example in generated if example.level == "routine"}
    assert {"about", "past", "negated"} <= kinds


def test_the_corpus_teaches_that_an_everyday_complaint_alone_is_not_an_emergency(generated) -> None:
    everyday = [example for example in generated if example.kind == "everyday"]
    assert len(everyday) > 200
    shipped = triage.fixture_triage()
    assert any("headache" in shipped.decide(example.text).reading.concepts for example in everyday)
    assert sum("help" in example.text.lower() and "with" in example.text.lower() for example in everyday) > 10
    # Its labels agree with the rules: no "everyday" negative is one the shipped rules call an emergency.
    wrong = [e.text for e in everyday if shipped.decide(e.text).level == "emergency" or e.level == "emergency"]
    assert not wrong, wrong[:5]
    # Negatives open with "help" and "urgent" as emergencies do: the word alone must not decide.
    negatives = [example.text for example in generated if example.level == "routine"]
    assert sum(text.lower().startswith(("help", "please help", "urgent")) for text in negatives) > 30


def test_the_corpus_is_the_same_every_time(generated) -> None:
    again = corpus.generate(
        triage.rows_from_fixture(triage.CONCEPTS_FIXTURE), triage.rows_from_fixture(triage.RULES_FIXTURE)
    )
    assert again == generated


def test_a_new_phrase_redraws_only_the_examples_of_the_rules_that_use_its_concept(generated) -> None:
    # One shared random stream redrew the whole corpus for any edit, and the retrained classifier moved
    # on messages the edit had nothing to do with. Each part now draws from its own stream.
    concepts = triage.rows_from_fixture(triage.CONCEPTS_FIXTURE)
    rules = triage.rows_from_fixture(triage.RULES_FIXTURE)
    for row in concepts:
        if row.name == "snake_bite":
            row.synonyms += "\nbitten by an adder"
    again = corpus.generate(concepts, rules)
    using = {rule.name for rule in rules if "snake_bite" in rule.condition}
    assert using
    negatives = {"about", "past", "negated", "benign"}  # a rule's negatives carry their kind, not its name
    changed = {example.kind for example in set(generated) ^ set(again)}
    assert changed and changed <= using | negatives, changed


def test_the_fast_scorer_gives_the_same_probability_as_scikit_learn() -> None:
    model = classifier.get()
    for text in ["my chest is crushing and im sweating", "what helps with hay fever", "", "baby 6 week temp 38.5"]:
        expected = model.predict_proba([triage.normalise(text)])[0][1]
        assert classifier.probability(text) == pytest.approx(expected, abs=1e-9)


def test_it_tells_emergencies_from_everyday_questions() -> None:
    assert classifier.probability("my husband is grey sweaty and has crushing pain in his chest") > classifier.THRESHOLD
    assert classifier.probability("how much vitamin c should i take") < 0.1


def test_a_second_process_loads_the_cached_model_instead_of_training(settings, tmp_path, monkeypatch) -> None:
    settings.MEDBOT_MODEL_CACHE = tmp_path
    classifier.get()  # from memory: nothing on disk yet in this test's cache folder
    monkeypatch.setattr(classifier, "_models", {})
    classifier.get()  # trains once and writes the file
    path = classifier._path(classifier.cache_key())
    assert path.exists()

    monkeypatch.setattr(classifier, "_models", {})
    monkeypatch.setattr(classifier, "train", lambda: pytest.fail("trained again instead of loading the cache"))
    assert classifier.get() is not None


def test_an_unreadable_model_means_rules_only_with_a_warning(monkeypatch, caplog) -> None:
    monkeypatch.setattr(classifier, "_scorers", {})
    monkeypatch.setattr(classifier, "get", lambda: (_ for _ in ()).throw(OSError("disk gone")))
    assert classifier.probability("anything") is None
    assert "rules decide alone" in caplog.text


def test_the_plain_analyzers_cut_text_exactly_as_scikit_learn_does() -> None:
    model = classifier.get()
    texts = ["my chest is crushing", "  two  spaces\tand\nlines ", "a b c", "naïve café 38.5°C", "x", "", "I'm OK"]
    for _, vectorizer in model.named_steps["features"].transformer_list:
        analyse = vectorizer.build_analyzer()
        low, high = vectorizer.ngram_range
        for text in texts:
            assert classifier.ANALYZERS[vectorizer.analyzer](text, low, high) == analyse(text), (vectorizer, text)


def test_a_serving_worker_scores_from_the_json_without_importing_scikit_learn(settings, tmp_path) -> None:
    import subprocess
    import sys

    settings.MEDBOT_MODEL_CACHE = tmp_path
    classifier._scorers.clear()
    expected = classifier.probability("my husband is grey sweaty and has crushing pain in his chest")
    assert list((tmp_path / "triage").glob("scorer-*.json"))
    script = (
        "import django, sys; django.setup(); from inference.triage import classifier; "
        "print(classifier.probability('my husband is grey sweaty and has crushing pain in his chest')); "
        "print('sklearn' in sys.modules)"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "medbot_site.settings", "MEDBOT_MODEL_CACHE": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    probability, imported = out.stdout.split()[-2:]
    assert float(probability) == pytest.approx(expected, abs=1e-12)
    assert imported == "False"

"""The classifier: its corpus, its training and disk cache, and its fast scorer. No model downloads."""

from __future__ import annotations

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


def test_the_corpus_is_the_same_every_time(generated) -> None:
    again = corpus.generate(
        triage.rows_from_fixture(triage.CONCEPTS_FIXTURE), triage.rows_from_fixture(triage.RULES_FIXTURE)
    )
    assert again == generated


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

"""Aliases: the names people use that the sources do not ("afib", "bowel cancer"), kept by curators
in the admin and found by the search as the topic's own name."""

from __future__ import annotations

import pytest
from django.test import Client

from inference import pipeline
from inference.retrieval import load_aliases, retriever, with_aliases
from knowledge import versions
from knowledge.models import Alias, KnowledgeSource, Passage
from knowledge.search import Document, KnowledgeIndex

ALIASES = "/admin/knowledge/alias/"


def passage(key: str, focus: str, text: str, title: str = "", kind: str = "information") -> Document:
    return Document(key=key, title=title or f"What is (are) {focus}?", focus=focus, text=text, question_type=kind)


PALPITATIONS = Document(
    key="rule:1",
    title="Palpitations",
    focus="Palpitations",
    text="Palpitations are when you notice your heartbeat; a heart tracing can check the rhythm.",
    synonyms=("palpitations", "heart racing", "afib"),
)
RHYTHM = passage(
    "passage:1",
    "Atrial Fibrillation",
    "Atrial fibrillation is an irregular and often fast heart rhythm that starts in the upper chambers.",
)
FAILING_HEART = passage("passage:2", "Heart Failure", "Heart failure means the heart cannot pump enough blood.")
LEAFLET = passage(
    "passage:3",
    "What I need to know about Hepatitis C",
    "Hepatitis C is a liver infection caused by a virus that spreads through blood.",
    title="What I need to know about Hepatitis C",
)


def top(index: KnowledgeIndex, question: str) -> str | None:
    hits = index.search(question, limit=1)
    return hits[0].document.focus if hits else None


def test_an_alias_reaches_its_topic_by_any_name_the_focus_goes_by() -> None:
    documents = with_aliases(
        [PALPITATIONS, RHYTHM, FAILING_HEART, LEAFLET],
        {"atrial fibrillation": ["afib"], "heart failure": ["chf"], "hepatitis c": ["hep c"]},
    )
    by_focus = {document.focus: document for document in documents}
    assert by_focus["Atrial Fibrillation"].aliases == ("afib",)
    assert "afib" in by_focus["Atrial Fibrillation"].synonyms
    assert by_focus["What I need to know about Hepatitis C"].aliases == ("hep c",)  # the leaflet's topic
    assert by_focus["Palpitations"].aliases == ()


def test_a_question_in_the_alias_finds_the_topic_before_an_entry_that_lists_the_word() -> None:
    plain = KnowledgeIndex([PALPITATIONS, RHYTHM, FAILING_HEART, LEAFLET])
    assert top(plain, "what is afib?") == "Palpitations"  # the entry's trigger, without the alias
    assert top(plain, "my mum has chf, what is it?") is None  # three letters the sources never write
    assert top(plain, "what is hep c") is None

    aliased = KnowledgeIndex(
        with_aliases(
            [PALPITATIONS, RHYTHM, FAILING_HEART, LEAFLET],
            {"atrial fibrillation": ["afib"], "heart failure": ["chf"], "hepatitis c": ["hep c"]},
        )
    )
    assert top(aliased, "what is afib?") == "Atrial Fibrillation"
    assert top(aliased, "my mum has chf, what is it?") == "Heart Failure"  # any length, in lower case
    assert top(aliased, "what is hep c") == "What I need to know about Hepatitis C"
    assert top(aliased, "what are palpitations") == "Palpitations"


def test_an_alias_keeps_its_topic_when_the_question_asks_what_only_an_entry_listing_it_covers() -> None:
    # No passage on atrial fibrillation answers inheritance, and the palpitations entry lists "afib":
    # the alias still says which topic it is, so who is at risk (speaking of families) answers.
    risk = passage(
        "passage:4",
        "Atrial Fibrillation",
        "Atrial fibrillation is more common with age and can run in families.",
        title="Who is at risk for Atrial Fibrillation?",
        kind="susceptibility",
    )
    index = KnowledgeIndex(with_aliases([PALPITATIONS, RHYTHM, risk], {"atrial fibrillation": ["afib"]}))
    assert index.search("is afib hereditary?")[0].document.key == "passage:4"


@pytest.fixture
def rhythm_passage(db) -> Passage:
    source = KnowledgeSource.objects.create(name="Test leaflets", publisher="Test Clinic")
    return Passage.objects.create(
        source=source,
        external_id="rhythm/1",
        title=RHYTHM.title,
        focus=RHYTHM.focus,
        text=RHYTHM.text,
        question_type="information",
    )


@pytest.fixture(autouse=True)
def _fast_passwords(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_a_curator_adds_an_alias_in_the_admin_and_the_next_answer_uses_it(curator, admin_for, rhythm_passage):
    retriever.reset()
    assert pipeline.answer("what is afib", use_model=False).source == "unavailable"
    carol: Client = admin_for(curator)
    before = versions.current(versions.KNOWLEDGE)

    response = carol.post(f"{ALIASES}add/", {"name": "  afib ", "focus": "atrial fibrillation", "enabled": "on"})

    assert response.status_code == 302, response.content.decode()[:2000]
    assert Alias.objects.get().name == "afib"  # spaces trimmed; capitals of the focus do not matter
    assert versions.current(versions.KNOWLEDGE) != before
    result = pipeline.answer("what is afib", use_model=False)
    assert result.source == "extract"
    assert result.citations[0]["title"] == "Atrial Fibrillation"  # an overview is cited by its topic
    listing = carol.get(ALIASES)
    assert b"afib" in listing.content and b"icon-yes.svg" in listing.content  # its topic is found


def test_an_alias_for_a_topic_nothing_is_about_is_refused_with_the_reason(curator, admin_for, rhythm_passage):
    carol: Client = admin_for(curator)

    response = carol.post(f"{ALIASES}add/", {"name": "afib", "focus": "Atrial flutter", "enabled": "on"})

    assert response.status_code == 200
    assert "No passage or curated entry is about “Atrial flutter”" in response.content.decode()
    assert not Alias.objects.exists()


def test_an_auditor_sees_aliases_but_cannot_add_them(auditor, admin_for, rhythm_passage):
    audrey: Client = admin_for(auditor)
    assert audrey.get(ALIASES).status_code == 200
    assert audrey.post(f"{ALIASES}add/", {"name": "afib", "focus": "Atrial Fibrillation"}).status_code == 403


def test_disabled_aliases_are_left_out_and_the_shipped_ones_load(curated_data) -> None:
    shipped = load_aliases()
    assert "afib" in shipped["atrial fibrillation"]
    assert "bowel cancer" in shipped["colorectal cancer"]
    Alias.objects.filter(name="afib").update(enabled=False)
    assert "afib" not in load_aliases().get("atrial fibrillation", [])


@pytest.mark.parametrize(
    ("name", "focus", "error"),
    [
        ("!!", "Atrial Fibrillation", "at least two letters"),
        ("ok", "Atrial Fibrillation", "is an everyday word"),
        ("AFIB", "atrial fibrillation", "is already an alias"),
        ("afib", "fibrillation", "No passage or curated entry is about"),
    ],
)
def test_the_alias_form_refuses_what_would_misfire(curator, admin_for, rhythm_passage, name, focus, error):
    Alias.objects.create(name="afib", focus="Atrial Fibrillation")
    carol: Client = admin_for(curator)

    response = carol.post(f"{ALIASES}add/", {"name": name, "focus": focus, "enabled": "on"})

    assert response.status_code == 200
    assert error in response.content.decode()
    assert Alias.objects.count() == 1

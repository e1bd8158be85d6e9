"""The knowledge base in the Django admin, through its real URLs: curators switch sources and edit
passages, auditors only look, and every change reaches the workers' search index."""

from __future__ import annotations

import pytest
from django.test import Client

from knowledge import versions
from knowledge.models import KnowledgeSource, Passage

SOURCES = "/admin/knowledge/knowledgesource/"
PASSAGES = "/admin/knowledge/passage/"


@pytest.fixture(autouse=True)
def _fast_passwords(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def carol(curator, admin_for) -> Client:
    return admin_for(curator)


@pytest.fixture
def audrey(auditor, admin_for) -> Client:
    return admin_for(auditor)


@pytest.fixture
def medquad(db) -> KnowledgeSource:
    source = KnowledgeSource.objects.create(name="medquad", publisher="NIH", licence="CC BY 4.0")
    for number, focus in enumerate(["Hiccups", "Head lice", "Restless legs"], start=1):
        Passage.objects.create(
            source=source,
            external_id=f"Sample/{number}/1",
            title=f"What is (are) {focus}?",
            focus=focus,
            text=f"A short answer about {focus.lower()}.",
        )
    return source


def test_a_curator_disables_a_whole_source_and_the_workers_are_told(carol, medquad):
    listing = carol.get(SOURCES)
    assert listing.status_code == 200
    assert b"medquad" in listing.content and b">3<" in listing.content  # its passage count
    before = versions.current(versions.KNOWLEDGE)

    response = carol.post(SOURCES, {"action": "disable_sources", "_selected_action": [medquad.pk]}, follow=True)

    assert response.status_code == 200
    assert b"Disabled 1 knowledge source." in response.content
    medquad.refresh_from_db()
    assert medquad.enabled is False
    assert versions.current(versions.KNOWLEDGE) != before

    carol.post(SOURCES, {"action": "enable_sources", "_selected_action": [medquad.pk]})
    medquad.refresh_from_db()
    assert medquad.enabled is True


def test_a_curator_finds_and_edits_a_passage_and_the_edit_is_in_its_history(carol, medquad):
    found = carol.get(PASSAGES, {"q": "lice"})
    assert b"What is (are) Head lice?" in found.content
    assert b"What is (are) Hiccups?" not in found.content
    passage = Passage.objects.get(focus="Head lice")
    form = {
        "source": medquad.pk,
        "title": passage.title,
        "focus": passage.focus,
        "synonyms": "Pediculosis",
        "question_type": "information",
        "text": "Head lice are small insects that live in the hair.",
        "url": "",
    }

    response = carol.post(f"{PASSAGES}{passage.pk}/change/", form)

    assert response.status_code == 302
    passage.refresh_from_db()
    assert (passage.text, passage.synonym_list(), passage.external_id) == (
        "Head lice are small insects that live in the hair.",
        ["Pediculosis"],
        "Sample/2/1",  # read-only once set: a re-import finds the passage by it
    )
    history = carol.get(f"{PASSAGES}{passage.pk}/history/")
    assert b"Changed Synonyms, Question type and Text." in history.content


def test_an_auditor_can_view_sources_and_passages_but_not_change_them(audrey, medquad):
    assert audrey.get(SOURCES).status_code == 200
    assert audrey.get(f"{SOURCES}{medquad.pk}/change/").status_code == 200
    passage = Passage.objects.get(focus="Hiccups")
    assert audrey.get(f"{PASSAGES}{passage.pk}/change/").status_code == 200
    assert b"disable_sources" not in audrey.get(SOURCES).content  # no actions offered

    disable = audrey.post(SOURCES, {"action": "disable_sources", "_selected_action": [medquad.pk]})
    edit = audrey.post(f"{PASSAGES}{passage.pk}/change/", {"source": medquad.pk, "text": "Changed."})

    assert edit.status_code == 403
    assert audrey.get(f"{PASSAGES}add/").status_code == 403
    assert audrey.post(f"{PASSAGES}{passage.pk}/delete/", {"post": "yes"}).status_code == 403
    assert disable.status_code == 200  # the list again: the action is not offered to a viewer
    medquad.refresh_from_db()
    passage.refresh_from_db()
    assert medquad.enabled is True
    assert passage.text == "A short answer about hiccups."


def test_deleting_a_source_signals_the_change_once_not_once_per_passage(knowledge_base, monkeypatch) -> None:
    from knowledge import versions

    bumps = []
    monkeypatch.setattr(versions, "bump", bumps.append)
    knowledge_base.delete()  # four passages cascade
    assert bumps == [versions.KNOWLEDGE]


def test_a_passage_search_lists_the_passage_about_the_words_first(carol, medquad):
    for number, (focus, text) in enumerate(
        [
            ("Anaemia", "Feeling faint when standing can come with low blood pressure."),
            ("High blood pressure", "Blood pressure that stays high strains the heart."),
        ],
        start=10,
    ):
        Passage.objects.create(
            source=medquad, external_id=f"Sample/{number}/1", title=f"What is (are) {focus}?", focus=focus, text=text
        )
    found = carol.get(PASSAGES, {"q": "blood pressure"})
    titles = [passage.title for passage in found.context["cl"].result_list]
    # Listed by focus, Anaemia would come first; by relevance, the passage about it does.
    assert titles == ["What is (are) High blood pressure?", "What is (are) Anaemia?"]

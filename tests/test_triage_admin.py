"""Curators steer triage in the admin, through its real URLs: concepts, red-flag rules, the try page."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from inference import triage
from inference.models import Concept, EmergencyRule

MISSED = "my son's todger is agony, came on out of the blue an hour ago"


@pytest.fixture(autouse=True)
def _rules_only(settings) -> None:
    # The rules side is what a curator's edit changes; the classifier is tested on its own.
    settings.MEDBOT_TRIAGE_CLASSIFIER = False


def concept_form(concept: Concept, **changes: str) -> dict[str, str]:
    data = {
        "name": concept.name,
        "kind": concept.kind,
        "synonyms": concept.synonyms,
        "ranges": concept.ranges,
        "description": concept.description,
        "enabled": "on" if concept.enabled else "",
    }
    data.update(changes)
    return data


def test_curators_may_add_change_delete_and_view_concepts(db) -> None:
    granted = set(Group.objects.get(name="Curators").permissions.values_list("codename", flat=True))
    assert {"add_concept", "change_concept", "delete_concept", "view_concept"} <= granted


def test_a_curator_edits_a_concept_in_the_admin(curated_data, curator, admin_for) -> None:
    sweating = Concept.objects.get(name="sweating")
    client = admin_for(curator)
    assert "sweating" in client.get("/admin/inference/concept/").content.decode()

    response = client.post(
        f"/admin/inference/concept/{sweating.pk}/change/",
        concept_form(sweating, synonyms=sweating.synonyms + "\nlathered", description="Sweating, clammy, lathered."),
    )
    assert response.status_code == 302
    sweating.refresh_from_db()
    assert "lathered" in sweating.synonym_list()
    assert sweating.description == "Sweating, clammy, lathered."


def test_a_curator_adding_a_synonym_makes_a_missed_phrasing_fire_without_a_restart(
    curated_data, curator, admin_for
) -> None:
    assert triage.assess(MISSED).level != "emergency"  # "todger" is not a word the concepts know
    testicle = Concept.objects.get(name="testicle_pain")

    response = admin_for(curator).post(
        f"/admin/inference/concept/{testicle.pk}/change/",
        concept_form(testicle, synonyms=testicle.synonyms + "\ntodger"),
    )
    assert response.status_code == 302
    result = triage.assess(MISSED)
    assert (result.level, result.rule) == ("emergency", "Sudden testicle pain")
    assert "testicle_pain" in result.concepts


def test_the_concept_form_refuses_a_measurement_without_a_range(curated_data, curator, admin_for) -> None:
    fever = Concept.objects.get(name="high_temperature")
    response = admin_for(curator).post(f"/admin/inference/concept/{fever.pk}/change/", concept_form(fever, ranges=""))
    assert response.status_code == 200
    assert "A measurement needs at least one range" in response.content.decode()


def test_the_rule_form_refuses_a_condition_naming_no_concept(curated_data, curator, admin_for) -> None:
    rule = EmergencyRule.objects.get(name="Heart attack")
    data = {
        "name": rule.name,
        "level": rule.level,
        "condition": "chest_discomfort AND sweaty_palms",
        "patterns": "",
        "response": rule.response,
        "priority": rule.priority,
        "enabled": "on",
    }
    response = admin_for(curator).post(f"/admin/inference/emergencyrule/{rule.pk}/change/", data)
    assert response.status_code == 200
    assert "No concept is called sweaty_palms." in response.content.decode()
    rule.refresh_from_db()
    assert "sweaty_palms" not in rule.condition


def test_the_try_page_shows_the_concepts_and_the_rule_that_fired(curated_data, curator, admin_for) -> None:
    question = "No fever, but my dad has crushing chest pain and he's sweating"
    response = admin_for(curator).post("/admin/inference/fallbackrule/try/", {"question": question})
    page = response.content.decode()
    fired = EmergencyRule.objects.get(name="Heart attack")
    assert f'Fires: <a href="/admin/inference/emergencyrule/{fired.pk}/change/">Heart attack</a>' in page
    assert '<td class="triage-level">emergency (by rules)</td>' in page
    assert "<code>chest_discomfort</code>" in page and "<code>sweating</code>" in page
    assert "(negated: not counted)" in page  # the fever
    fired.refresh_from_db()
    assert fired.hit_count == 0


def test_the_try_page_shows_an_urgent_banner(curated_data, curator, admin_for) -> None:
    page = (
        admin_for(curator)
        .post("/admin/inference/fallbackrule/try/", {"question": "I think I've broken my wrist, it's swollen"})
        .content.decode()
    )
    assert "Urgent:" in page and "Possible broken bone" in page
    assert '<td class="triage-level">urgent (by rules)</td>' in page


def test_bulk_disabling_a_concept_reaches_triage_on_the_next_message(curated_data, curator, admin_for) -> None:
    question = "my son has a purple rash that doesn't fade under a glass"
    assert triage.assess(question).rule == "Meningitis signs"
    rash = Concept.objects.get(name="non_blanching_rash")
    admin_for(curator).post(
        "/admin/inference/concept/", {"action": "disable_rules", "_selected_action": [rash.pk], "index": 0}
    )
    rash.refresh_from_db()
    assert not rash.enabled
    assert triage.assess(question).rule != "Meningitis signs"


def test_the_rule_form_lists_the_concept_names_a_condition_can_use(curated_data, curator, admin_for) -> None:
    rule = EmergencyRule.objects.get(name="Sepsis signs")
    page = admin_for(curator).get(f"/admin/inference/emergencyrule/{rule.pk}/change/").content.decode()
    assert "mottled_skin" in page and "chest_discomfort" in page

"""The Django admin, through its real URLs: who may do what, the try page, promoting feedback,
activating adapters, disclaimers, bulk switches reaching the pipeline, imports and exports."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group, Permission, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.http import HttpResponse
from django.test import Client

from chat.models import Conversation, Feedback, Message
from inference import adapters, pipeline
from inference.models import AuditLog, Disclaimer, EmergencyRule, FallbackRule
from training.admin import loss_curve_svg
from training.models import TrainingExample, TrainingRun

SCRIPT = "<script>alert(1)</script>"


@pytest.fixture(autouse=True)
def _fast_passwords(settings) -> None:
    """Users here log in with force_login; hashing their passwords properly only costs time."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def run_action(client: Client, changelist: str, action: str, *objects: object, follow: bool = True) -> HttpResponse:
    return client.post(changelist, {"action": action, "_selected_action": [obj.pk for obj in objects]}, follow=follow)


def conversation_with_feedback(owner: User, rating: int) -> tuple[Message, Feedback]:
    """Two turns; the feedback is on the first answer, so its question is the first question."""
    conversation = Conversation.objects.create(owner=owner, title="Ears")
    question = Message.objects.create(conversation=conversation, role="user", content="How do I clear ear wax?")
    first = Message.objects.create(
        conversation=conversation, role="assistant", content="Use a cotton bud.", source="model", reply_to=question
    )
    second = Message.objects.create(conversation=conversation, role="user", content="And for children?")
    Message.objects.create(
        conversation=conversation, role="assistant", content="The same.", source="model", reply_to=second
    )
    feedback = Feedback.objects.create(message=first, rating=rating, reason="unsafe", comment="Never cotton buds!")
    return first, feedback


# --- groups and permissions ----------------------------------------------------------------------


def test_it_gives_the_curators_and_auditors_groups_only_their_permissions(db) -> None:
    def granted(name: str) -> set[str]:
        permissions = Group.objects.get(name=name).permissions.select_related("content_type")
        return {f"{p.content_type.app_label}.{p.codename}" for p in permissions}

    curated = [
        "inference.fallbackrule",
        "inference.emergencyrule",
        "inference.concept",
        "inference.disclaimer",
        "training.trainingexample",
        "knowledge.knowledgesource",
        "knowledge.passage",
        "knowledge.alias",
    ]
    expected_curators = {
        f"{app}.{action}_{model}"
        for app, model in (name.split(".") for name in curated)
        for action in ("add", "change", "delete", "view")
    } | {
        "training.view_trainingrun",
        "training.change_trainingrun",
        "chat.view_feedback",
        "chat.change_feedback",
    }
    assert granted("Curators") == expected_curators
    assert granted("Auditors") == {
        "inference.view_auditlog",
        "chat.view_conversation",
        "chat.view_message",
        "chat.view_feedback",
        "knowledge.view_knowledgesource",
        "knowledge.view_passage",
        "knowledge.view_alias",
    }


def test_rerunning_the_group_setup_brings_hand_edited_groups_back_to_their_permissions(db, rebuild_groups) -> None:
    curators = Group.objects.get(name="Curators")
    expected = set(curators.permissions.all())
    curators.permissions.add(Permission.objects.get(codename="delete_auditlog"))
    Group.objects.filter(name="Auditors").delete()
    inference_config = apps.get_app_config("inference")
    models_module = inference_config.models_module

    rebuild_groups()  # what live-server tests do after a flush, with the global registry

    assert set(curators.permissions.all()) == expected
    assert Group.objects.get(name="Auditors").permissions.count() == 7
    assert inference_config.models_module is models_module


def test_it_lets_a_curator_change_a_rule_but_not_see_the_audit_log(curator, admin_for) -> None:
    rule = FallbackRule.objects.create(title="Ear wax", triggers="ear wax", answer="Olive oil drops.")
    client = admin_for(curator)
    url = f"/admin/inference/fallbackrule/{rule.pk}/change/"
    assert client.get(url).status_code == 200
    response = client.post(
        url, {"title": "Ear wax", "triggers": "ear wax\nblocked ear", "answer": "Try olive oil drops.", "priority": 3}
    )
    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.answer, rule.priority, rule.enabled) == ("Try olive oil drops.", 3, False)
    assert client.get("/admin/inference/auditlog/").status_code == 403


def test_it_lets_an_auditor_read_the_audit_log_and_transcripts_but_change_nothing(auditor, alice, admin_for) -> None:
    AuditLog.objects.create(client_id="c0ffee", source="emergency", latency_ms=12)
    rule = FallbackRule.objects.create(title="Ear wax", triggers="ear wax", answer="Olive oil drops.")
    answer, _ = conversation_with_feedback(alice, -1)
    client = admin_for(auditor)

    log = client.get("/admin/inference/auditlog/")
    assert log.status_code == 200
    assert "c0ffee" in log.content.decode()
    transcript_url = f"/admin/chat/conversation/{answer.conversation_id}/change/"
    transcript = client.get(transcript_url)
    assert transcript.status_code == 200
    assert "Use a cotton bud." in transcript.content.decode()
    assert client.get("/admin/chat/feedback/").status_code == 200

    assert client.post(transcript_url, {"title": "Rewritten"}).status_code == 403
    assert client.post(f"/admin/chat/message/{answer.pk}/change/", {"content": "Rewritten"}).status_code == 403
    assert client.get(f"/admin/inference/fallbackrule/{rule.pk}/change/").status_code == 403
    rule_form = {"title": "Changed", "triggers": "x", "answer": "y", "priority": 0, "enabled": "on"}
    assert client.post(f"/admin/inference/fallbackrule/{rule.pk}/change/", rule_form).status_code == 403
    answer.refresh_from_db()
    rule.refresh_from_db()
    assert answer.content == "Use a cotton bud."
    assert Conversation.objects.get().title == "Ears"
    assert rule.title == "Ear wax"


def test_it_never_lets_anyone_add_edit_or_delete_messages_or_audit_rows(alice, admin_user, admin_for) -> None:
    answer, _ = conversation_with_feedback(alice, -1)
    row = AuditLog.objects.create(client_id="c0ffee", source="rule")
    client = admin_for(admin_user)  # a superuser: refused by the admin classes, not by permissions
    assert client.get("/admin/chat/message/add/").status_code == 403
    assert client.post(f"/admin/chat/message/{answer.pk}/change/", {"content": "x"}).status_code == 403
    assert client.post(f"/admin/chat/message/{answer.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.get("/admin/inference/auditlog/add/").status_code == 403
    assert client.post(f"/admin/inference/auditlog/{row.pk}/delete/", {"post": "yes"}).status_code == 403
    page = client.get(f"/admin/chat/conversation/{answer.conversation_id}/change/").content.decode()
    assert "Use a cotton bud." in page
    assert 'name="messages-0-content"' not in page  # the inline shows text, not form fields
    assert Message.objects.filter(pk=answer.pk, content="Use a cotton bud.").exists()
    assert AuditLog.objects.filter(pk=row.pk).exists()


def test_it_hides_bulk_actions_from_staff_without_the_change_permission(admin_for, db) -> None:
    viewer = User.objects.create_user("vera", is_staff=True)
    viewer.user_permissions.add(Group.objects.get(name="Curators").permissions.get(codename="view_fallbackrule"))
    rule = FallbackRule.objects.create(title="Ear wax", triggers="ear wax", answer="Olive oil drops.")
    response = run_action(admin_for(viewer), "/admin/inference/fallbackrule/", "disable_rules", rule)
    assert response.status_code == 200
    rule.refresh_from_db()
    assert rule.enabled


# --- the try page --------------------------------------------------------------------------------


def test_the_try_page_shows_where_the_answer_comes_from_triage_and_the_escaped_answer(
    curated_data, curator, admin_for
) -> None:
    rule = FallbackRule.objects.create(
        title=f"Ear wax {SCRIPT}",
        triggers="ear wax\nblocked ear\nearwax",
        answer=f"A few drops of olive oil soften ear wax. {SCRIPT}",
        priority=5,
    )
    question = "How do I clear ear wax from a blocked ear?"
    client = admin_for(curator)
    assert "Try a question" in client.get("/admin/inference/fallbackrule/").content.decode()

    response = client.post("/admin/inference/fallbackrule/try/", {"question": question})
    page = response.content.decode()
    assert response.status_code == 200
    assert f'<a href="/admin/inference/fallbackrule/{rule.pk}/change/">Ear wax &lt;script&gt;' in page
    assert "The question names its topic" in page and "used first" in page
    assert "Does not fire." in page
    assert '<td class="source">The curated answer, as written</td>' in page
    assert "A few drops of olive oil soften ear wax. &lt;script&gt;" in page
    assert Disclaimer.objects.get(active=True).text in page
    assert SCRIPT not in page
    rule.refresh_from_db()
    assert rule.hit_count == 0  # a curator's trial is not a user's question


def test_the_try_page_says_which_emergency_rule_fires(curated_data, curator, admin_for) -> None:
    response = admin_for(curator).post(
        "/admin/inference/fallbackrule/try/", {"question": "I think I'm having a heart attack, my chest is crushing"}
    )
    page = response.content.decode()
    fired = EmergencyRule.objects.get(name="Heart attack")
    assert f'Fires: <a href="/admin/inference/emergencyrule/{fired.pk}/change/">Heart attack</a>' in page
    assert '<td class="source">The emergency advice</td>' in page
    assert sum(EmergencyRule.objects.values_list("hit_count", flat=True)) == 0


@pytest.mark.parametrize(
    "question",
    ["How do I clear ear wax from a blocked ear?", "I think I'm having a heart attack, my chest is crushing", "zzz"],
)
def test_the_try_page_speaks_plainly_without_internal_names_settings_or_scores(
    curated_data, curator, admin_for, question
) -> None:
    page = admin_for(curator).post("/admin/inference/fallbackrule/try/", {"question": question}).content.decode()
    main = re.sub(r"<[^>]+>", " ", page[page.index('id="content-main"') :]).lower()  # what a curator reads
    jargon = ("bm25", "medbot_", "probability", "classifier", "adapter", "quality gate", "faithfulness", "latency")
    assert [word for word in jargon if word in main] == []
    assert not re.search(r"\b0\.\d\d\b", main)  # no scores
    assert "learned check" in main


def test_the_rule_form_says_what_matching_reads_not_the_algorithm_s_name(curator, admin_for) -> None:
    page = admin_for(curator).get("/admin/inference/fallbackrule/add/").content.decode()
    assert "the title and the answer; the closest match answers" in page
    assert "BM25" not in page


def test_the_try_page_says_in_words_why_the_language_model_did_not_answer(curated_data, curator, admin_for) -> None:
    page = admin_for(curator).post("/admin/inference/fallbackrule/try/", {"question": "What is asthma?"})
    assert "The language model is switched off on this server." in page.content.decode()  # as in the tests


def test_the_try_page_is_refused_to_auditors(auditor, admin_for) -> None:
    response = admin_for(auditor).post("/admin/inference/fallbackrule/try/", {"question": "ear wax"})
    assert response.status_code == 403


# --- searching the rules ----------------------------------------------------------------------------


@pytest.fixture
def shipped_rules(db) -> None:
    call_command("loaddata", str(Path(settings.BASE_DIR) / "fixtures" / "fallback_rules.json"), verbosity=0)


def rule_titles(client: Client, search: str, **params: str) -> list[str]:
    response = client.get("/admin/inference/fallbackrule/", {"q": search, **params})
    return [str(rule) for rule in response.context["cl"].result_list]


def test_searching_the_rules_lists_the_entry_about_the_words_before_entries_that_mention_them(
    shipped_rules, curator, admin_for
) -> None:
    titles = rule_titles(admin_for(curator), "blood pressure")
    # Priority 5 put "Heart attack warning signs" (which only mentions blood and pressure) first.
    assert titles[:2] == ["High blood pressure", "Low blood pressure"]
    assert titles.index("High blood pressure") < titles.index("Heart attack warning signs")


def test_a_title_match_outranks_a_match_in_the_answer_and_column_sorting_still_wins(curator, admin_for) -> None:
    FallbackRule.objects.create(title="Allergies", triggers="hay fever", answer="Pollen sets off asthma.", priority=9)
    FallbackRule.objects.create(title="Asthma", triggers="wheeze", answer="Asthma narrows the airways.")
    client = admin_for(curator)
    assert rule_titles(client, "asthma") == ["Asthma", "Allergies"]
    assert rule_titles(client, "asthma", o="1") == ["Allergies", "Asthma"]  # by title, as clicked


# --- rule history -----------------------------------------------------------------------------------


RULE_FORM = {"title": "Ear wax", "triggers": "ear wax", "priority": 0, "enabled": "on"}


def edit_rule(client: Client, rule: FallbackRule, **changes: object) -> None:
    response = client.post(f"/admin/inference/fallbackrule/{rule.pk}/change/", {**RULE_FORM, **changes})
    assert response.status_code == 302


def test_a_rules_history_shows_each_change_before_and_after(curator, admin_for) -> None:
    rule = FallbackRule.objects.create(title="Ear wax", triggers="ear wax", answer="Use cotton buds.")
    client = admin_for(curator)
    edit_rule(client, rule, answer="Olive oil drops soften wax.")
    edit_rule(client, rule, answer=f"Olive oil drops soften wax. {SCRIPT}", priority=2)

    page = client.get(f"/admin/inference/fallbackrule/{rule.pk}/history/").content.decode()
    rows = page.split('class="version"')[1:]
    assert len(rows) == 2
    first_before, first_after = rows[0].split('class="before">')[1].split('class="after">')
    assert "Use cotton buds." in first_before and "Olive oil drops soften wax." in first_after
    assert "Priority" not in rows[0]  # only what changed
    assert "Priority" in rows[1] and "&lt;script&gt;" in rows[1]
    assert SCRIPT not in page


def test_a_browsers_line_endings_are_not_a_change(curator, admin_for) -> None:
    """Textareas post CRLF; the fixtures hold LF. Saving without touching the triggers must not
    rewrite them, nor list them as changed in the history."""
    rule = FallbackRule.objects.create(title="Ear wax", triggers="ear wax\nblocked ear", answer="Use oil drops.")
    client = admin_for(curator)
    edit_rule(client, rule, triggers="ear wax\r\nblocked ear", answer="Use olive oil drops.")
    rule.refresh_from_db()
    assert rule.triggers == "ear wax\nblocked ear"
    assert LogEntry.objects.get(object_id=str(rule.pk)).get_change_message() == "Changed Answer."


def test_a_curator_puts_back_the_version_a_change_replaced_and_that_is_logged_too(curator, admin_for) -> None:
    rule = FallbackRule.objects.create(title="Ear wax", triggers="ear wax", answer="Olive oil drops soften wax.")
    client = admin_for(curator)
    edit_rule(client, rule, answer="Use cotton buds.", priority=4)  # a bad edit
    bad_change = LogEntry.objects.get(object_id=str(rule.pk))
    before = pipeline.answer("How do I clear ear wax?")
    assert "cotton buds" in before.text

    response = client.post(f"/admin/inference/fallbackrule/{rule.pk}/history/{bad_change.pk}/restore/", follow=True)

    assert "Put back the version from before the change of" in response.content.decode()
    rule.refresh_from_db()
    assert (rule.answer, rule.priority, rule.enabled) == ("Olive oil drops soften wax.", 0, True)
    assert "Olive oil" in pipeline.answer("How do I clear ear wax?").text  # workers told, like any edit
    restore = LogEntry.objects.filter(object_id=str(rule.pk)).latest("pk")
    assert restore.pk != bad_change.pk and "Changed" in restore.get_change_message()
    page = client.get(f"/admin/inference/fallbackrule/{rule.pk}/history/").content.decode()
    assert page.count("Put back the version before this change") == 2  # the restore can be undone too


def test_bulk_switching_a_rule_off_is_in_its_history_and_can_be_undone(curator, admin_for) -> None:
    rule = FallbackRule.objects.create(title="Ear wax", triggers="ear wax", answer="Olive oil drops soften wax.")
    client = admin_for(curator)
    run_action(client, "/admin/inference/fallbackrule/", "disable_rules", rule)
    switch = LogEntry.objects.get(object_id=str(rule.pk))
    assert switch.get_change_message() == "Changed Enabled."
    client.post(f"/admin/inference/fallbackrule/{rule.pk}/history/{switch.pk}/restore/")
    rule.refresh_from_db()
    assert rule.enabled


def test_only_curators_who_may_change_a_rule_may_restore_it_and_only_by_post(curator, admin_for, db) -> None:
    rule = FallbackRule.objects.create(title="Ear wax", triggers="ear wax", answer="Olive oil drops soften wax.")
    edit_rule(admin_for(curator), rule, answer="Use cotton buds.")
    change = LogEntry.objects.get(object_id=str(rule.pk))
    url = f"/admin/inference/fallbackrule/{rule.pk}/history/{change.pk}/restore/"
    viewer = User.objects.create_user("vera", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_fallbackrule"))

    assert admin_for(curator).get(url).status_code == 405
    assert admin_for(viewer).post(url).status_code == 403
    assert "Put back" not in admin_for(viewer).get(f"/admin/inference/fallbackrule/{rule.pk}/history/").content.decode()
    rule.refresh_from_db()
    assert rule.answer == "Use cotton buds."


# --- rules and disclaimers reach the pipeline ----------------------------------------------------


def test_bulk_disabling_a_rule_changes_the_next_answer_and_enabling_brings_it_back(
    curated_data, curator, admin_for
) -> None:
    question = "What are the symptoms of asthma?"
    before = pipeline.answer(question)  # warms the rule index and the answer cache
    rule = FallbackRule.objects.get(title=before.matched_rule)
    assert before.source == "rule"
    client = admin_for(curator)

    response = run_action(client, "/admin/inference/fallbackrule/", "disable_rules", rule)
    assert "Disabled 1 fallback rule." in response.content.decode()
    after = pipeline.answer(question)
    assert after.matched_rule != rule.title
    assert not after.cached

    run_action(client, "/admin/inference/fallbackrule/", "enable_rules", rule)
    assert pipeline.answer(question).matched_rule == rule.title


def test_bulk_disabling_an_emergency_rule_stops_triage_on_the_next_call(curated_data, curator, admin_for) -> None:
    question = "I think I'm having a heart attack, my chest is crushing"
    assert pipeline.answer(question).source == "emergency"
    heart_attack = EmergencyRule.objects.filter(name="Heart attack")
    run_action(admin_for(curator), "/admin/inference/emergencyrule/", "disable_rules", *heart_attack)
    assert pipeline.answer(question).matched_rule != "Heart attack"


def test_activating_a_disclaimer_leaves_exactly_one_active_and_answers_carry_it(curator, admin_for) -> None:
    old = Disclaimer.objects.create(text="Old wording.", version=1, active=True)
    new = Disclaimer.objects.create(text="New wording.", version=2)
    assert pipeline.answer("anything at all").disclaimer == "Old wording."
    client = admin_for(curator)

    response = run_action(client, "/admin/inference/disclaimer/", "activate_disclaimer", new)
    assert "Disclaimer v2 is now shown" in response.content.decode()
    assert list(Disclaimer.objects.filter(active=True)) == [new]
    assert pipeline.answer("anything at all").disclaimer == "New wording."

    run_action(client, "/admin/inference/disclaimer/", "activate_disclaimer", old, new)
    assert list(Disclaimer.objects.filter(active=True)) == [new]  # two selected: refused


def test_it_refuses_to_delete_the_active_disclaimer_but_keeps_deleting_old_ones(curator, admin_for) -> None:
    old = Disclaimer.objects.create(text="Old wording.", version=1)
    active = Disclaimer.objects.create(text="Current wording.", version=2, active=True)
    client = admin_for(curator)

    page = client.post(f"/admin/inference/disclaimer/{active.pk}/delete/", {"post": "yes"}).content.decode()
    assert "the active disclaimer" in page
    page = client.post(
        "/admin/inference/disclaimer/",
        {"action": "delete_selected", "_selected_action": [old.pk, active.pk], "post": "yes"},
    ).content.decode()
    assert "the active disclaimer" in page
    assert Disclaimer.objects.count() == 2

    assert client.post(f"/admin/inference/disclaimer/{old.pk}/delete/", {"post": "yes"}).status_code == 302
    assert list(Disclaimer.objects.all()) == [active]


def test_a_disclaimers_text_is_fixed_once_saved_and_a_new_one_gets_the_next_version(curator, admin_for) -> None:
    saved = Disclaimer.objects.create(text="Kept as shown.", version=4, active=True)
    client = admin_for(curator)
    assert 'value="5"' in client.get("/admin/inference/disclaimer/add/").content.decode()
    response = client.post(f"/admin/inference/disclaimer/{saved.pk}/change/", {"text": "Rewritten.", "version": 9})
    assert response.status_code == 403
    saved.refresh_from_db()
    assert (saved.text, saved.version) == ("Kept as shown.", 4)


# --- feedback -------------------------------------------------------------------------------------


def test_promoting_thumbs_down_feedback_creates_a_training_example_from_its_question(curator, alice, admin_for) -> None:
    _, feedback = conversation_with_feedback(alice, -1)
    client = admin_for(curator)

    response = run_action(client, "/admin/chat/feedback/", "promote", feedback, follow=False)
    promote_url = f"/admin/chat/feedback/{feedback.pk}/promote/"
    assert response["Location"] == promote_url
    page = client.get(promote_url).content.decode()
    assert "How do I clear ear wax?" in page
    assert "Never cotton buds!" in page

    response = client.post(promote_url, {"answer": "Never use cotton buds; olive oil drops soften wax."})
    assert response.status_code == 302
    example = TrainingExample.objects.get()
    assert example.origin == "feedback"
    assert example.question == "How do I clear ear wax?"
    assert example.answer == "Never use cotton buds; olive oil drops soften wax."
    feedback.refresh_from_db()
    assert feedback.promoted

    again = client.post(promote_url, {"answer": "Twice?"}, follow=True)
    assert "already promoted" in again.content.decode()
    assert TrainingExample.objects.count() == 1


def test_it_refuses_to_promote_helpful_feedback_or_an_empty_correction(curator, alice, admin_for) -> None:
    _, helpful = conversation_with_feedback(alice, 1)
    _, unhelpful = conversation_with_feedback(alice, -1)
    client = admin_for(curator)
    response = client.post(f"/admin/chat/feedback/{helpful.pk}/promote/", {"answer": "Anything"}, follow=True)
    assert "Only answers rated not helpful are promoted." in response.content.decode()
    response = client.post(f"/admin/chat/feedback/{unhelpful.pk}/promote/", {"answer": "   "})
    assert "This field is required." in response.content.decode()  # blank after stripping
    assert not TrainingExample.objects.exists()
    assert not Feedback.objects.filter(promoted=True).exists()


def test_auditors_see_feedback_but_cannot_promote_or_edit_it(auditor, alice, admin_for) -> None:
    _, feedback = conversation_with_feedback(alice, -1)
    client = admin_for(auditor)
    assert client.post(f"/admin/chat/feedback/{feedback.pk}/promote/", {"answer": "x"}).status_code == 403
    assert client.post(f"/admin/chat/feedback/{feedback.pk}/change/", {"comment": "x"}).status_code == 403
    assert not TrainingExample.objects.exists()


CURATED = "MedBot curated entries"  # inference.retrieval.CURATED_SOURCE


def rated_rule_answer(owner: User) -> tuple[FallbackRule, Feedback]:
    """A thumbs-down on an answer a curated entry gave, through the real ask flow's fields."""
    rule = FallbackRule.objects.create(title="Ear wax", triggers="ear wax", answer="Olive oil drops soften wax.")
    conversation = Conversation.objects.create(owner=owner, title="Ears")
    question = Message.objects.create(conversation=conversation, role="user", content="How do I clear ear wax?")
    answer = Message.objects.create(
        conversation=conversation,
        role="assistant",
        content="Olive oil drops soften wax.",
        source="rule",
        matched_rule="Ear wax",
        citations=[{"title": "Ear wax", "publisher": "MedBot", "url": "", "source": CURATED}],
        reply_to=question,
    )
    return rule, Feedback.objects.create(message=answer, rating=-1, reason="unclear", comment="Which oil?")


def test_a_rating_keeps_a_copy_of_the_question_and_answer_it_rates(alice) -> None:
    _, feedback = rated_rule_answer(alice)
    feedback.refresh_from_db()
    assert (feedback.question, feedback.answer, feedback.source, feedback.matched_rule) == (
        "How do I clear ear wax?",
        "Olive oil drops soften wax.",
        "rule",
        "Ear wax",
    )
    assert feedback.citations[0]["title"] == "Ear wax"


def test_the_feedback_list_shows_the_question_and_links_the_entry_that_answered(curator, alice, admin_for) -> None:
    rule, feedback = rated_rule_answer(alice)
    response = admin_for(curator).get("/admin/chat/feedback/")
    page = response.content.decode()
    assert "How do I clear ear wax?" in page
    assert f'<a href="/admin/inference/fallbackrule/{rule.pk}/change/">Ear wax</a>' in page
    assert "Not helpful: unclear" in page
    assert f'href="/admin/chat/feedback/{feedback.pk}/promote/"' in page


def test_a_rated_answer_from_an_imported_overview_links_its_passage(curator, alice, admin_for) -> None:
    # The attack review: citations show "What is (are) Asthma?" as "Asthma", and the rating's page
    # looked the passage up by the shown title, calling it "since removed".
    from knowledge.models import KnowledgeSource, Passage

    source = KnowledgeSource.objects.create(name="leaflets", publisher="Test Clinic")
    passage = Passage.objects.create(
        source=source,
        external_id="a/1",
        title="What is (are) Asthma?",
        focus="Asthma",
        text="Asthma narrows the airways.",
    )
    conversation = Conversation.objects.create(owner=alice, title="Asthma")
    question = Message.objects.create(conversation=conversation, role="user", content="What is asthma?")
    answer = Message.objects.create(
        conversation=conversation,
        role="assistant",
        content="Asthma narrows the airways.",
        source="extract",
        citations=[{"title": "Asthma", "publisher": "Test Clinic", "url": "", "source": "leaflets"}],
        reply_to=question,
    )
    Feedback.objects.create(message=answer, rating=-1, reason="unclear")
    page = admin_for(curator).get("/admin/chat/feedback/").content.decode()
    assert f'<a href="/admin/knowledge/passage/{passage.pk}/change/">Asthma</a>' in page
    assert "since removed" not in page


def test_the_feedback_list_is_a_few_short_columns_to_fit_a_laptop_screen(curator, alice, admin_for) -> None:
    """The browser test measures the rows at 1,280 pixels; this one pins the columns."""
    _, feedback = rated_rule_answer(alice)
    Feedback.objects.filter(pk=feedback.pk).update(question="Why? " * 100, comment="Because. " * 100)
    response = admin_for(curator).get("/admin/chat/feedback/")
    assert response.context["cl"].list_display == [
        "action_checkbox",
        "rated",
        "verdict",
        "question_and_comment",
        "answered_from",
        "promote_link",
    ]
    cells = re.findall(r'<t[dh] class="field-([^"]+)"[^>]*>(.*?)</t[dh]>', response.content.decode(), re.S)
    shown = {name: re.sub(r"<[^>]+>", "", cell) for name, cell in cells}
    assert len(shown["question_and_comment"]) <= 80 + 60 + 2
    assert all(len(text) <= 50 for name, text in shown.items() if name != "question_and_comment")


def test_a_ratings_page_shows_the_question_the_answer_and_links_every_source(
    curator, alice, admin_for, knowledge_base
) -> None:
    passage = knowledge_base.passages.get(external_id="gout-2")
    conversation = Conversation.objects.create(owner=alice, title="Gout")
    question = Message.objects.create(conversation=conversation, role="user", content="How is gout treated?")
    answer = Message.objects.create(
        conversation=conversation,
        role="assistant",
        content=f"Rest the joint. {SCRIPT}",
        source="extract",
        matched_rule=passage.title,
        citations=[{"title": passage.title, "publisher": "Test Clinic", "url": passage.url, "source": "Test leaflets"}],
        reply_to=question,
    )
    feedback = Feedback.objects.create(message=answer, rating=1)
    page = admin_for(curator).get(f"/admin/chat/feedback/{feedback.pk}/change/").content.decode()
    assert "How is gout treated?" in page
    assert "Rest the joint. &lt;script&gt;" in page and SCRIPT not in page
    assert f'<a href="/admin/knowledge/passage/{passage.pk}/change/">How is gout treated?</a>' in page
    assert f'href="/admin/chat/conversation/{conversation.pk}/change/"' in page


def test_an_emergency_rating_links_the_red_flag_rule_that_fired(curator, alice, admin_for) -> None:
    rule = EmergencyRule.objects.create(name="Chest pain", condition="chest_pain", response="Call 999.")
    conversation = Conversation.objects.create(owner=alice)
    question = Message.objects.create(conversation=conversation, role="user", content="Crushing chest pain")
    answer = Message.objects.create(
        conversation=conversation,
        role="assistant",
        content="Call 999.",
        source="emergency",
        matched_rule="Chest pain",
        reply_to=question,
    )
    Feedback.objects.create(message=answer, rating=1)
    page = admin_for(curator).get("/admin/chat/feedback/").content.decode()
    assert f'<a href="/admin/inference/emergencyrule/{rule.pk}/change/">Chest pain</a>' in page


def test_deleting_a_conversation_keeps_its_feedback_for_curators_without_the_link(
    curator, alice, admin_user, admin_for
) -> None:
    rule, feedback = rated_rule_answer(alice)
    conversation = feedback.message.conversation
    response = admin_for(admin_user).post(f"/admin/chat/conversation/{conversation.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Conversation.objects.exists() and not Message.objects.exists()

    feedback.refresh_from_db()
    assert feedback.message is None  # nothing leads back to the conversation or its owner
    assert (feedback.question, feedback.answer) == ("How do I clear ear wax?", "Olive oil drops soften wax.")
    client = admin_for(curator)
    listing = client.get("/admin/chat/feedback/").content.decode()
    assert "How do I clear ear wax?" in listing
    assert f'href="/admin/inference/fallbackrule/{rule.pk}/change/"' in listing
    page = client.get(f"/admin/chat/feedback/{feedback.pk}/change/").content.decode()
    assert "Olive oil drops soften wax." in page and "Deleted" in page

    # Promoting still works, from the copy.
    promote_url = f"/admin/chat/feedback/{feedback.pk}/promote/"
    assert "How do I clear ear wax?" in client.get(promote_url).content.decode()
    assert client.post(promote_url, {"answer": "Two drops of olive oil, twice a day."}).status_code == 302
    example = TrainingExample.objects.get(origin="feedback")
    assert (example.question, example.answer) == ("How do I clear ear wax?", "Two drops of olive oil, twice a day.")


@pytest.mark.django_db(transaction=True)
def test_the_migration_copies_the_question_and_answer_onto_existing_ratings() -> None:
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before = [("chat", "0006_triage_note")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    conversation = old.get_model("chat", "Conversation").objects.create(owner_key_hash="a" * 64)
    old_message = old.get_model("chat", "Message")
    question = old_message.objects.create(conversation_id=conversation.pk, role="user", content="What is gout?")
    answer = old_message.objects.create(
        conversation_id=conversation.pk,
        role="assistant",
        content="A kind of arthritis.",
        source="rule",
        matched_rule="Gout",
        citations=[{"title": "Gout", "publisher": "MedBot", "url": "", "source": CURATED}],
        reply_to_id=question.pk,
    )
    rating = old.get_model("chat", "Feedback").objects.create(message_id=answer.pk, rating=-1)

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    feedback = Feedback.objects.get(pk=rating.pk)
    assert (feedback.question, feedback.answer, feedback.source, feedback.matched_rule) == (
        "What is gout?",
        "A kind of arthritis.",
        "rule",
        "Gout",
    )
    assert feedback.citations == [{"title": "Gout", "publisher": "MedBot", "url": "", "source": CURATED}]


# --- training runs --------------------------------------------------------------------------------


def finished_run(settings, folder: str, **fields: object) -> TrainingRun:
    """A succeeded run with an adapter, whose evaluation found it no worse than the base model
    (what activating needs without an override)."""
    adapter = Path(settings.MEDBOT_ADAPTER_DIR) / folder
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text("{}")
    fields.setdefault("evaluation", {"verdict": {"beats_base": True}})
    return TrainingRun.objects.create(
        base_model="gpt2", status=TrainingRun.Status.SUCCEEDED, adapter_path=folder, **fields
    )


def test_activating_a_run_and_rolling_back_to_an_earlier_one(settings, curator, admin_for) -> None:
    first = finished_run(settings, "run-a")
    second = finished_run(settings, "run-b")
    client = admin_for(curator)

    response = run_action(client, "/admin/training/trainingrun/", "activate_run", second)
    assert f"Run {second.pk} is now active" in response.content.decode()
    assert list(TrainingRun.objects.filter(active=True)) == [second]
    assert adapters.active_adapter().version == f"run-{second.pk}"

    run_action(client, "/admin/training/trainingrun/", "activate_run", first)
    assert list(TrainingRun.objects.filter(active=True)) == [first]
    assert adapters.active_adapter().version == f"run-{first.pk}"

    run_action(client, "/admin/training/trainingrun/", "deactivate_runs", first)
    assert not TrainingRun.objects.filter(active=True).exists()


def test_it_refuses_to_activate_a_failed_run_or_one_without_an_adapter(settings, curator, admin_for) -> None:
    active = finished_run(settings, "run-a", active=True)
    failed = TrainingRun.objects.create(base_model="gpt2", status=TrainingRun.Status.FAILED, adapter_path="run-a")
    missing = TrainingRun.objects.create(base_model="gpt2", status=TrainingRun.Status.SUCCEEDED, adapter_path="gone")
    client = admin_for(curator)

    response = run_action(client, "/admin/training/trainingrun/", "activate_run", failed)
    assert f"Run {failed.pk} did not succeed (failed)" in response.content.decode()
    response = run_action(client, "/admin/training/trainingrun/", "activate_run", missing)
    assert f"Run {missing.pk} has no adapter" in response.content.decode()
    assert list(TrainingRun.objects.filter(active=True)) == [active]


WORSE = {
    "questions": 24,
    "base": {"pass_rate": 0.5, "unsupported_share": 0.1, "rouge_l": 0.3},
    "adapter": {"pass_rate": 0.25, "unsupported_share": 0.2, "rouge_l": 0.31},
    "verdict": {"beats_base": False, "reasons": ["gate pass rate 25% < base 50%"]},
    "samples": [{"question": "What is gout?", "base": "Gout is arthritis.", "adapter": SCRIPT}],
}


def test_activating_a_run_worse_than_the_base_asks_for_a_reason_and_records_it(settings, curator, admin_for) -> None:
    serving = finished_run(settings, "run-a", active=True)
    worse = finished_run(settings, "run-b", evaluation=WORSE)
    client = admin_for(curator)

    page = run_action(client, "/admin/training/trainingrun/", "activate_run", worse).content.decode()
    assert "did not beat the base model" in page and "gate pass rate 25% &lt; base 50%" in page
    assert 'name="override_reason"' in page
    assert list(TrainingRun.objects.filter(active=True)) == [serving]  # nothing changed yet

    form = {"action": "activate_run", "_selected_action": [worse.pk], "override": "1"}
    page = client.post("/admin/training/trainingrun/", {**form, "override_reason": "  "}).content.decode()
    assert "Give a reason" in page
    page = client.post("/admin/training/trainingrun/", {**form, "override_reason": "x" * 1001}).content.decode()
    assert "under 1000 characters" in page
    assert list(TrainingRun.objects.filter(active=True)) == [serving]

    response = client.post(
        "/admin/training/trainingrun/", {**form, "override_reason": "Curators prefer its wording"}, follow=True
    )
    assert "active by override" in response.content.decode()
    worse.refresh_from_db()
    assert worse.active and f"by {curator.username}: Curators prefer its wording" in worse.activation_override
    logged = LogEntry.objects.get(object_id=str(worse.pk))
    assert logged.user == curator and "Curators prefer its wording" in logged.get_change_message()


def test_a_runs_page_shows_its_evaluation_beside_the_loss_curve(settings, curator, admin_for) -> None:
    run = finished_run(settings, "run-a", evaluation=WORSE)
    page = admin_for(curator).get(f"/admin/training/trainingrun/{run.pk}/change/").content.decode()
    assert "Answers that pass the faithfulness gate" in page and "50%" in page and "25% (worse)" in page
    assert "0.310 (better)" in page  # ROUGE-L
    assert "needs an override" in page and "What is gout?" in page
    assert SCRIPT not in page  # a model's answer is text, never HTML
    listing = admin_for(curator).get("/admin/training/trainingrun/").content.decode()
    assert "50% → 25%" in listing


def test_a_runs_page_is_read_only_and_draws_its_loss_curve(settings, curator, admin_for) -> None:
    history = [
        {"step": 10, "epoch": 1, "train_loss": 2.5, "eval_loss": 2.6},
        {"step": 20, "epoch": 2, "train_loss": 1.9, "eval_loss": 2.1},
        {"step": 30, "epoch": 3, "train_loss": 1.4, "eval_loss": 1.8},
        {"step": "<b>", "train_loss": f"{SCRIPT}", "eval_loss": None},  # not numbers: left out
    ]
    run = finished_run(settings, "run-a", loss_history=history, notes=SCRIPT, validation_loss=1.8)
    client = admin_for(curator)
    url = f"/admin/training/trainingrun/{run.pk}/change/"

    page = client.get(url).content.decode()
    assert '<polyline class="train-loss" points="' in page
    assert '<polyline class="eval-loss" points="' in page
    assert "last 1.800" in page
    assert SCRIPT not in page
    assert 'name="notes"' not in page  # shown, not editable
    assert client.post(url, {"notes": "changed", "status": "failed"}).status_code == 403
    assert client.get("/admin/training/trainingrun/add/").status_code == 403
    run.refresh_from_db()
    assert (run.notes, run.status) == (SCRIPT, "succeeded")


def test_the_loss_curve_plots_every_evaluation_and_says_so_when_there_is_none() -> None:
    svg = loss_curve_svg([{"step": s, "train_loss": 3.0 - s / 10, "eval_loss": 3.1 - s / 10} for s in range(1, 6)])
    train_points = svg.split('class="train-loss" points="')[1].split('"')[0].split()
    assert len(train_points) == 5
    ys = [float(point.split(",")[1]) for point in train_points]
    assert ys == sorted(ys)  # falling loss: each point lower on the chart, i.e. a larger y
    assert "No evaluations" in loss_curve_svg([])
    assert "No evaluations" in loss_curve_svg([{"step": 1, "train_loss": float("nan")}])


# --- training examples ----------------------------------------------------------------------------


def upload(name: str, content: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content.encode(), content_type="application/json")


def test_importing_a_json_file_adds_new_examples_and_skips_duplicates(curator, admin_for) -> None:
    TrainingExample.objects.create(question="What is a migraine?", answer="A kind of headache.")
    data = [
        {"question": "What is a migraine?", "answer": "Duplicate."},
        {"question": "How much water should I drink?", "answer": "About eight cups a day."},
        {"input": "Is a cold contagious?", "output": "Yes, for the first few days."},
    ]
    client = admin_for(curator)
    assert "Import JSON" in client.get("/admin/training/trainingexample/").content.decode()

    response = client.post(
        "/admin/training/trainingexample/import/", {"file": upload("pairs.json", json.dumps(data))}, follow=True
    )
    assert "read 3, added 2, duplicates 1" in response.content.decode()
    assert set(TrainingExample.objects.filter(origin="import").values_list("question", flat=True)) == {
        "How much water should I drink?",
        "Is a cold contagious?",
    }


@pytest.mark.parametrize(
    "content,error",
    [
        ('[{"question": "Q?", "answer": "A."}, ', "pairs.json: invalid JSON"),
        ('{"question": "Q?", "answer": "A."}', "pairs.json: expected a JSON list"),
        ('[{"question": "Q?", "answer": "A."}, {"question": "No answer"}]', "pairs.json, item 2: needs"),
    ],
)
def test_a_bad_import_file_shows_an_error_and_changes_nothing(curator, admin_for, content, error) -> None:
    response = admin_for(curator).post(
        "/admin/training/trainingexample/import/", {"file": upload("pairs.json", content)}
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert error in page
    assert "Nothing was imported." in page
    assert not TrainingExample.objects.exists()


def test_examples_are_exported_as_json_and_switched_in_bulk(curator, admin_for) -> None:
    kept = TrainingExample.objects.create(question="What is a migraine?", answer="A kind of headache.")
    other = TrainingExample.objects.create(question="Is a cold contagious?", answer="Yes.", enabled=False)
    client = admin_for(curator)

    response = run_action(client, "/admin/training/trainingexample/", "export_examples", kept, follow=False)
    assert response["Content-Disposition"] == 'attachment; filename="medbot-training-examples.json"'
    assert json.loads(response.content) == [
        {"question": "What is a migraine?", "answer": "A kind of headache.", "origin": "fixture", "enabled": True}
    ]
    run_action(client, "/admin/training/trainingexample/", "disable_examples", kept)
    run_action(client, "/admin/training/trainingexample/", "enable_examples", other)
    kept.refresh_from_db()
    other.refresh_from_db()
    assert (kept.enabled, other.enabled) == (False, True)


# --- the audit log export -------------------------------------------------------------------------


def test_the_audit_log_exports_the_selected_rows_as_csv_with_formulas_defused(auditor, admin_for) -> None:
    rows = [
        AuditLog.objects.create(client_id="a1", source="rule", latency_ms=40, question='=HYPERLINK("http://x")'),
        AuditLog.objects.create(client_id="a2", source="model", latency_ms=900, question="+1 and -2"),
        AuditLog.objects.create(client_id="@a3", source="emergency", adapter_version="-run-3", question="Plain?"),
    ]
    AuditLog.objects.create(client_id="not-selected", source="rule")
    response = run_action(admin_for(auditor), "/admin/inference/auditlog/", "export_audit_csv", *rows, follow=False)
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    table = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))

    assert table[0] == [
        "created_at",
        "client_id",
        "conversation_id",
        "source",
        "latency_ms",
        "adapter_version",
        "question",
    ]
    body = {row[1]: row for row in table[1:]}
    assert set(body) == {"a1", "a2", "'@a3"}
    assert body["a1"][6] == '\'=HYPERLINK("http://x")'
    assert body["a1"][4] == "40"
    assert body["a2"][6] == "'+1 and -2"
    assert body["'@a3"][5] == "'-run-3"
    assert body["'@a3"][6] == "Plain?"
    assert body["a1"][0] == rows[0].created_at.isoformat()

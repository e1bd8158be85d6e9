"""Anonymous visitors own their conversations through a random secret in their session, never
through the session key, and nothing staff can read authenticates as them."""

from __future__ import annotations

import html
import re

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from chat import ownership
from chat.models import Conversation, Feedback, Message
from inference.models import AuditLog

ADMIN_LINK = re.compile(r'href="(/admin/[^"#?]*)')
TOKEN_LIKE = re.compile(r"[A-Za-z0-9_\-]{16,}")


@pytest.fixture
def auditor(db) -> User:
    """Staff whose only permissions come from the Auditors group (read-only: transcripts, feedback,
    the audit log)."""
    user = User.objects.create_user("audrey", is_staff=True)
    user.groups.add(Group.objects.get(name="Auditors"))
    return user


@pytest.fixture
def visitor(curated_data, settings) -> Client:
    """An anonymous visitor who asked a question, rated the answer and renamed the conversation,
    with the audit log (text included) on, so every record staff can read has a row."""
    settings.MEDBOT_AUDIT_LOG = True
    settings.MEDBOT_AUDIT_LOG_TEXT = True
    client = Client()
    client.get("/")
    body = client.post("/api/v1/ask", {"question": "How do I treat a minor burn?"}, content_type="application/json")
    conversation, answer = body.json()["conversation"], body.json()["message"]["id"]
    client.post(f"/api/v1/messages/{answer}/feedback", {"rating": -1}, content_type="application/json")
    client.patch(f"/api/v1/conversations/{conversation}/", {"title": "Burns"}, content_type="application/json")
    assert Feedback.objects.count() == 1 and AuditLog.objects.count() == 1
    return client


def everything_an_auditor_can_read(client: Client) -> list[str]:
    """Every admin page reachable by links from the admin index, and the audit-log CSV export."""
    pages: list[str] = []
    seen: set[str] = set()
    queue = ["/admin/"]
    while queue and len(seen) < 200:
        path = queue.pop(0)
        if path in seen or "logout" in path or "password_change" in path:
            continue
        seen.add(path)
        response = client.get(path)
        if response.status_code != 200 or "html" not in response.get("Content-Type", ""):
            continue
        text = response.content.decode()
        pages.append(text)
        queue += [html.unescape(link) for link in ADMIN_LINK.findall(text)]
    assert any("/admin/chat/conversation/" in path and "/change/" in path for path in seen)
    rows = list(AuditLog.objects.values_list("pk", flat=True))
    export = client.post("/admin/inference/auditlog/", {"action": "export_audit_csv", "_selected_action": rows})
    assert export.status_code == 200
    pages.append(b"".join(export.streaming_content).decode())
    return pages


def test_anonymous_conversations_are_owned_by_a_hashed_secret_not_the_session_key(curated_data):
    client = Client()
    conversation = client.post("/api/v1/ask", {"question": "asthma?"}, content_type="application/json").json()
    row = Conversation.objects.get(pk=conversation["conversation"])
    session_key = client.cookies["sessionid"].value
    secret = client.session[ownership.SECRET_SESSION_KEY]
    assert row.owner_key_hash == ownership.hash_secret(secret)
    assert session_key not in row.owner_key_hash and secret not in row.owner_key_hash
    assert client.get(f"/api/v1/conversations/{row.pk}/").status_code == 200


def test_an_auditor_with_every_admin_page_they_can_open_cannot_act_as_an_anonymous_visitor(visitor, auditor):
    conversation = Conversation.objects.get()
    session_key = visitor.cookies["sessionid"].value
    secret = visitor.session[ownership.SECRET_SESSION_KEY]
    admin = Client()
    admin.force_login(auditor)

    pages = everything_an_auditor_can_read(admin)

    everything = "\n".join(pages)
    assert "How do I treat a minor burn?" in everything  # the auditor does read the transcript
    for credential in (session_key, secret, conversation.owner_key_hash):
        assert credential not in everything
    # Nor does anything that looks like a key work as one: as a session cookie or as an API token.
    for candidate in set(TOKEN_LIKE.findall(everything)):
        impostor = Client()
        impostor.cookies["sessionid"] = candidate
        assert impostor.get(f"/api/v1/conversations/{conversation.pk}/").status_code == 404
        assert impostor.get("/api/v1/conversations/").json()["count"] == 0
        token = Client().get("/api/v1/conversations/", HTTP_AUTHORIZATION=f"Token {candidate}")
        assert token.status_code == 401
    # The visitor still has their conversation.
    assert visitor.get(f"/api/v1/conversations/{conversation.pk}/").status_code == 200


def test_a_session_without_the_secret_owns_nothing_even_with_the_hash(visitor):
    """The stored hash is not a credential: a session holding it as its secret owns nothing."""
    conversation = Conversation.objects.get()
    stranger = Client()
    session = stranger.session
    session[ownership.SECRET_SESSION_KEY] = conversation.owner_key_hash
    session.save()
    stranger.cookies["sessionid"] = session.session_key
    assert stranger.get(f"/api/v1/conversations/{conversation.pk}/").status_code == 404


def test_logging_in_moves_the_visitors_conversations_to_the_account_and_drops_the_secret(visitor, alice):
    conversation = Conversation.objects.get()
    visitor.post("/accounts/login/", {"username": "alice", "password": "alice-password-1"})
    conversation.refresh_from_db()
    assert conversation.owner == alice
    assert conversation.owner_key_hash == ""
    assert ownership.SECRET_SESSION_KEY not in visitor.session
    assert visitor.get(f"/api/v1/conversations/{conversation.pk}/").status_code == 200


def test_signing_up_moves_the_visitors_conversations_too(visitor):
    password = "a-long-unusual-passphrase-7"
    response = visitor.post("/accounts/signup/", {"username": "dora", "password1": password, "password2": password})
    assert response.status_code == 302
    assert Conversation.objects.get().owner == User.objects.get(username="dora")


@pytest.mark.django_db(transaction=True)
def test_the_migration_gives_live_sessions_a_secret_and_links_old_answers():
    """Rows from before: conversations owned by a session key, answers without a link."""
    from importlib import import_module

    from django.conf import settings
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before = [("chat", "0003_owner_key_reply_to_and_answering")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    store = import_module(settings.SESSION_ENGINE).SessionStore()
    store["something"] = "kept"
    store.create()
    live = old.get_model("chat", "Conversation").objects.create(session_key=store.session_key, title="Live")
    gone = old.get_model("chat", "Conversation").objects.create(session_key="x" * 32, title="Gone")
    old_message = old.get_model("chat", "Message")
    question = old_message.objects.create(conversation_id=live.pk, role="user", content="What is asthma?")
    answer = old_message.objects.create(conversation_id=live.pk, role="assistant", content="A condition.")
    old_feedback = old.get_model("chat", "Feedback")
    old_feedback.objects.create(message_id=answer.pk, rating=1)
    newest = old_feedback.objects.create(message_id=answer.pk, rating=-1)

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())  # back to the latest, for the tests after

    session = import_module(settings.SESSION_ENGINE).SessionStore(store.session_key)
    assert session["something"] == "kept"
    live_row, gone_row = Conversation.objects.get(pk=live.pk), Conversation.objects.get(pk=gone.pk)
    assert live_row.owner_key_hash == ownership.hash_secret(session[ownership.SECRET_SESSION_KEY])
    assert store.session_key not in live_row.owner_key_hash
    assert gone_row.owner_key_hash and gone_row.owner_key_hash != live_row.owner_key_hash
    assert Message.objects.get(pk=answer.pk).reply_to_id == question.pk
    assert list(Feedback.objects.values_list("pk", flat=True)) == [newest.pk]

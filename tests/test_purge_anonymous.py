"""`manage.py purge_anonymous_conversations` deletes anonymous conversations nobody can open any
more: those whose owner secret is in no unexpired session. Signed-in users' are never touched."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from chat.models import Conversation, Message

pytestmark = pytest.mark.django_db


def start_conversation(client: Client, title: str) -> Conversation:
    response = client.post("/api/v1/conversations/", {"title": title}, content_type="application/json")
    assert response.status_code == 201, response.content
    conversation = Conversation.objects.get(pk=response.json()["id"])
    Message.objects.create(conversation=conversation, role="user", content=f"A question about {title}")
    # Last touched two days ago: past the grace period that protects a conversation made moments ago.
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=timezone.now() - timedelta(days=2))
    return conversation


def purge(*args: str) -> str:
    out = StringIO()
    call_command("purge_anonymous_conversations", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def dana() -> Client:
    """An anonymous visitor whose session is still live."""
    return Client()


@pytest.fixture
def erin() -> Client:
    """An anonymous visitor whose session will be cleared (clearsessions, a flushed session)."""
    return Client()


@pytest.fixture
def frank() -> Client:
    """An anonymous visitor whose session row is still there but has expired."""
    return Client()


def test_it_deletes_anonymous_conversations_whose_session_is_gone_or_expired(dana, erin, frank, alice, client_for):
    kept = start_conversation(dana, "asthma")
    cleared = start_conversation(erin, "burns")
    expired = start_conversation(frank, "migraine")
    alices = start_conversation(client_for(alice), "diabetes")
    Session.objects.filter(session_key=erin.session.session_key).delete()
    Session.objects.filter(session_key=frank.session.session_key).update(expire_date=timezone.now() - timedelta(1))

    assert purge() == "Deleted 2 anonymous conversations with no live session.\n"

    assert set(Conversation.objects.values_list("pk", flat=True)) == {kept.pk, alices.pk}
    assert not Message.objects.filter(conversation_id__in=[cleared.pk, expired.pk]).exists()
    assert dana.get(f"/api/v1/conversations/{kept.pk}/").status_code == 200


def test_a_dry_run_counts_and_deletes_nothing(erin):
    start_conversation(erin, "burns")
    Session.objects.all().delete()

    assert purge("--dry-run") == "Would delete 1 anonymous conversation with no live session.\n"

    assert Conversation.objects.count() == 1


def test_it_leaves_a_conversation_touched_in_the_last_hour(erin):
    # A new visitor's conversation is saved just before their session is: not an orphan.
    conversation = start_conversation(erin, "burns")
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=timezone.now())
    Session.objects.all().delete()

    assert purge() == "Deleted 0 anonymous conversations with no live session.\n"

    assert Conversation.objects.filter(pk=conversation.pk).exists()

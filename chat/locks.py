"""One answer at a time per conversation.

Two asks in one conversation at once (two tabs, a double click, a script) used to interleave:
each question's history missed the other's answer, and answers landed out of order. The second
ask is now refused with 409 while the first is written.

The lock is a column on the conversation (``answering_since``), taken with one conditional
UPDATE, so it holds across workers and needs no cache (which may be the thing that is down).
A worker that dies mid-answer cannot release it; the lock then goes stale after the longest an
answer may take, and the next ask takes it over.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from chat.models import Conversation


class ConversationBusy(Exception):
    """Another answer is being written in this conversation."""


def stale_after() -> timedelta:
    # Generation is cut off at MEDBOT_GENERATION_TIMEOUT; the margin covers retrieval and saving.
    return timedelta(seconds=settings.MEDBOT_GENERATION_TIMEOUT * 2 + 30)


def acquire(conversation: Conversation) -> None:
    """Mark the conversation as answering; raises ConversationBusy if it already is."""
    now = timezone.now()
    free = Q(answering_since__isnull=True) | Q(answering_since__lt=now - stale_after())
    taken = Conversation.objects.filter(free, pk=conversation.pk).update(answering_since=now)
    if not taken:
        raise ConversationBusy
    conversation.answering_since = now


def busy(conversation: Conversation) -> bool:
    """Whether an answer is being written (as last read): a quick refusal before anything is
    counted. ``acquire`` is still what decides."""
    since = conversation.answering_since
    return since is not None and since >= timezone.now() - stale_after()


def release(conversation: Conversation) -> None:
    Conversation.objects.filter(pk=conversation.pk).update(answering_since=None)
    conversation.answering_since = None


@contextmanager
def answering(conversation: Conversation) -> Iterator[None]:
    """Hold the conversation's lock for the block; raises ConversationBusy before entering."""
    acquire(conversation)
    try:
        yield
    finally:
        release(conversation)

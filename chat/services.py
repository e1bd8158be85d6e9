"""The ask flow: store the question, get an answer from ``inference``, store the answer."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

from django.db import transaction
from django.utils import timezone

from chat.models import Conversation, Message
from inference import audit
from inference.pipeline import MODEL, AnswerResult, curated, stream_answer
from inference.prompting import Turn

logger = logging.getLogger(__name__)

HISTORY_TURNS = 8  # the engine trims further to its token budget


def history_for(conversation: Conversation, before: Message) -> list[Turn]:
    """The latest turns before ``before``, oldest first. Only role and text reach the model."""
    rows = conversation.messages.filter(id__lt=before.id).order_by("-id").values_list("role", "content")[:HISTORY_TURNS]
    return [Turn(role, content) for role, content in reversed(rows)]


@transaction.atomic
def save_question(conversation: Conversation, text: str) -> Message:
    """Committed on its own, before any generation, so a question is never lost."""
    message = Message.objects.create(conversation=conversation, role=Message.Role.USER, content=text)
    if not conversation.title:
        conversation.title = conversation.title_from(text)
    conversation.updated_at = timezone.now()
    conversation.save(update_fields=["title", "updated_at"])
    return message


def save_answer(conversation: Conversation, result: AnswerResult, client: str, question: str) -> Message:
    message = Message.objects.create(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        content=result.text,
        source=result.source,
        matched_rule=result.matched_rule,
        disclaimer=result.disclaimer,
        adapter_version=result.adapter_version,
        latency_ms=result.latency_ms,
        tokens=result.tokens,
        partial=result.partial,
    )
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=timezone.now())
    audit.record(
        client=client,
        conversation_id=conversation.pk,
        source=result.source,
        latency_ms=result.latency_ms,
        adapter_version=result.adapter_version,
        question=question,
    )
    return message


def ask_stream(conversation: Conversation, text: str, client: str = "") -> Iterator[str | Message]:
    """Yield answer text pieces, then the saved assistant Message.

    The answer is saved before its last pieces are handed out, and if the consumer stops early
    (a client that went away mid-generation) what the model wrote so far is saved, marked
    partial. Model trouble never raises (the rules answer); database errors propagate."""
    question = save_question(conversation, text)
    history = history_for(conversation, question)
    cancel = threading.Event()
    pieces: list[str] = []
    result: AnswerResult | None = None
    try:
        for item in stream_answer(text, history, cancel=cancel):
            if isinstance(item, AnswerResult):
                result = item
                break
            pieces.append(item)
            yield item
    finally:
        if result is None:
            cancel.set()
            partial_text = "".join(pieces).strip()
            if partial_text:
                saved = save_answer(
                    conversation,
                    AnswerResult(text=partial_text, source=MODEL, disclaimer=curated.disclaimer_text, partial=True),
                    client,
                    text,
                )
                logger.info("Client left mid-answer; saved partial message %s", saved.pk)
    message = save_answer(conversation, result, client, text)
    if not pieces:
        yield result.text
    yield message


def ask(conversation: Conversation, text: str, client: str = "") -> Message:
    """Answer ``text`` in ``conversation``; returns the saved assistant Message."""
    message = None
    for item in ask_stream(conversation, text, client):
        if isinstance(item, Message):
            message = item
    assert message is not None
    return message


def export_markdown(conversation: Conversation) -> str:
    lines = [
        f"# {conversation.title or 'Conversation'}",
        "",
        f"Exported from MedBot on {timezone.now():%Y-%m-%d %H:%M} UTC.",
        "",
    ]
    for message in conversation.messages.all():
        who = "You" if message.role == Message.Role.USER else f"MedBot ({message.get_source_display()})"
        lines += [f"**{who}** · {message.created_at:%Y-%m-%d %H:%M}", "", message.content, ""]
        if message.role == Message.Role.ASSISTANT and message.disclaimer:
            lines += [f"> {message.disclaimer}", ""]
    return "\n".join(lines)


def adopt_anonymous_conversations(user, session_key: str | None) -> int:
    """At login, the visitor's anonymous conversations become the account's."""
    if not session_key:
        return 0
    return Conversation.objects.filter(owner__isnull=True, session_key=session_key).update(owner=user, session_key="")


def ensure_session(request) -> str:
    """The anonymous visitor's session key, creating the session if needed. The key is also kept
    inside the session, since login changes the key and history must follow the visitor."""
    session = request.session
    if session.session_key is None:
        session.save()
    if session.get("medbot_previous_session") != session.session_key and not request.user.is_authenticated:
        session["medbot_previous_session"] = session.session_key
    return session.session_key

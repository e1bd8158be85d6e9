"""The ask flow: store the question, get an answer from ``inference``, store the answer."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from urllib.parse import quote, urlsplit

from django.db import transaction
from django.utils import timezone

from chat import ownership
from chat.models import Conversation, Message
from inference import audit
from inference.pipeline import AnswerResult, Stage, interrupted, stream_answer
from inference.prompting import Turn

logger = logging.getLogger(__name__)

HISTORY_TURNS = 8  # the engine trims further to its token budget


def history_for(conversation: Conversation, before: Message) -> list[Turn]:
    """The latest turns before ``before``, oldest first. Only role and text reach the model."""
    # Answers follow the question they reply to (``reply_to``), even when two asks interleaved.
    turns = [Turn(m.role, m.content) for m in conversation.transcript(before=before, last_questions=HISTORY_TURNS)]
    return turns[-HISTORY_TURNS:]


@transaction.atomic
def save_question(conversation: Conversation, text: str) -> Message:
    """Committed on its own, before any generation, so a question is never lost."""
    message = Message.objects.create(conversation=conversation, role=Message.Role.USER, content=text)
    if not conversation.title:
        conversation.title = conversation.title_from(text)
    conversation.updated_at = timezone.now()
    conversation.save(update_fields=["title", "updated_at"])
    return message


def save_answer(
    conversation: Conversation, result: AnswerResult, client: str, question: str, reply_to: Message | None = None
) -> Message:
    message = Message.objects.create(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        reply_to=reply_to,
        content=result.text,
        source=result.source,
        matched_rule=result.matched_rule,
        disclaimer=result.disclaimer,
        adapter_version=result.adapter_version,
        latency_ms=result.latency_ms,
        tokens=result.tokens,
        partial=result.partial,
        triage_level=result.triage_level,
        triage_note=result.triage_note,
        fallback=result.fallback,
        citations=result.citations,
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


def ask_stream(
    conversation: Conversation, text: str, client: str = "", question: Message | None = None
) -> Iterator[str | Stage | Message]:
    """Yield answer text pieces (and the pipeline's ``Stage`` markers), then the saved assistant Message.

    ``question``: the question already saved by ``save_question`` (a caller that reports it
    before the answer starts); otherwise it is saved here first. The answer is saved before its
    last pieces are handed out, and if the consumer stops early (a client that went away
    mid-generation) what the model wrote so far is saved, marked partial. Model trouble never
    raises (the rules answer); database errors propagate."""
    if question is None:
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
            if isinstance(item, Stage):
                yield item
                continue
            pieces.append(item)
            yield item
    finally:
        if result is None:
            cancel.set()
            partial_text = "".join(pieces).strip()
            if partial_text:
                saved = save_answer(
                    conversation,
                    interrupted(partial_text),
                    client,
                    text,
                    reply_to=question,
                )
                logger.info("Client left mid-answer; saved partial message %s", saved.pk)
    message = save_answer(conversation, result, client, text, reply_to=question)
    if not pieces:
        yield result.text
    yield message


def ask(conversation: Conversation, text: str, client: str = "", question: Message | None = None) -> Message:
    """Answer ``text`` in ``conversation``; returns the saved assistant Message."""
    message = None
    for item in ask_stream(conversation, text, client, question):
        if isinstance(item, Message):
            message = item
    assert message is not None
    return message


def markdown_text(text: str) -> str:
    """Text as Markdown shows it literally: no HTML a viewer would render, no link syntax."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("[", "\\[").replace("]", "\\]")


def citation_line(citation: dict[str, str]) -> str:
    """One source as plain text: title, publisher and a web address (never a Markdown link,
    whose text and target could differ; never an address that is not http or https)."""
    url = citation.get("url", "")
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        url = ""
    parts = [
        markdown_text(citation.get("title", "")),
        f"({markdown_text(citation['publisher'])})" if citation.get("publisher") else "",
        f"<{quote(url, safe=':/?#@!$&()*+,;=%~.-_')}>" if url else "",
    ]
    return " ".join(p for p in parts if p)


def export_markdown(conversation: Conversation) -> str:
    lines = [
        f"# {markdown_text(conversation.title or 'Conversation')}",
        "",
        f"Exported from MedBot on {timezone.now():%Y-%m-%d %H:%M} UTC.",
        "",
    ]
    for message in conversation.transcript():  # each answer right under the question it answers
        if message.role == Message.Role.USER:
            who = "You"
        else:
            who = "MedBot" if message.is_pleasantry else f"MedBot ({message.get_source_display()})"
        lines += [f"**{who}** · {message.created_at:%Y-%m-%d %H:%M}", ""]
        if message.triage_note:
            lines += [f"**Urgent.** {markdown_text(message.triage_note)}", ""]
        lines += [markdown_text(message.content), ""]
        if message.citations:
            lines += ["Sources:", *(f"- {citation_line(c)}" for c in message.citations), ""]
        if message.role == Message.Role.ASSISTANT and message.disclaimer:
            lines += [f"> {message.disclaimer}", ""]
    return "\n".join(lines)


@transaction.atomic
def start_conversation(text: str, **owner: object) -> tuple[Conversation, Message]:
    """A new conversation together with its first question, in one transaction: a question that
    is refused (rate limit, validation) or never saved leaves no empty conversation behind.
    ``owner``: ``owner=user`` or ``owner_key_hash=...``. Returns (conversation, question)."""
    conversation = Conversation.objects.create(**owner)
    return conversation, save_question(conversation, text)


def adopt_anonymous_conversations(user, session) -> int:
    """At login, the visitor's anonymous conversations become the account's, and the session's
    owner secret is dropped (it owns nothing any more). Returns how many moved."""
    key = ownership.owner_key(session)
    if key is None:
        return 0
    session.pop(ownership.SECRET_SESSION_KEY, None)
    return Conversation.objects.filter(owner__isnull=True, owner_key_hash=key).update(owner=user, owner_key_hash="")


def ensure_session(request) -> str:
    """The anonymous visitor's owner key (see ``chat.ownership``), creating the owner secret, and
    so the session, if needed. The secret survives login's new session key, so history follows."""
    return ownership.owner_key(request.session, create=True)

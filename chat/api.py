"""The REST API. Views translate HTTP; ``chat.services`` does the work."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Q
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.utils.text import slugify
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import filters, mixins, renderers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from chat import locks, ownership, ratelimits, services
from chat.models import Conversation, Feedback, Message
from chat.serializers import (
    AskResponseSerializer,
    AskSerializer,
    ConversationDetailSerializer,
    ConversationSerializer,
    ErrorSerializer,
    FeedbackSerializer,
    LegacyAskResponseSerializer,
    LegacyAskSerializer,
    MessageCreateSerializer,
    MessageSerializer,
)
from chat.services import ensure_session
from inference.pipeline import Stage

logger = logging.getLogger(__name__)

NO_STORE = {"Cache-Control": "no-store"}
RATE_LIMITED = OpenApiResponse(ErrorSerializer, description="Too many questions; see Retry-After.")
BUSY = OpenApiResponse(ErrorSerializer, description="An answer is still being written in this conversation.")


class RateLimited(APIException):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_detail = "Too many questions. Please wait a moment and try again."
    default_code = "rate_limited"

    def __init__(self, wait: int, detail: str | None = None) -> None:
        super().__init__(detail)
        self.wait = wait


class AnswerInProgress(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = (
        "MedBot is still answering your previous question in this conversation. "
        "Wait for that answer to finish, then ask again."
    )
    default_code = "answer_in_progress"


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus Retry-After on 429 and a JSON 503 when the database is down."""
    if isinstance(exc, DatabaseError):
        logger.error("Database error during an API request", exc_info=exc)
        return Response({"detail": "MedBot's database is unavailable. Try again shortly."}, status=503)
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, list):
        # Errors raised outside a serializer (filters, say) come as bare lists: always an object.
        response.data = {"detail": " ".join(str(item) for item in response.data)}
    if response is not None and isinstance(exc, RateLimited):
        response["Retry-After"] = str(exc.wait)
    return response


class EventStreamRenderer(renderers.BaseRenderer):
    """Lets content negotiation accept ``Accept: text/event-stream``; the view streams itself."""

    media_type = "text/event-stream"
    format = "sse"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        return f"event: error\ndata: {json.dumps(data)}\n\n".encode()


def owner_key_for(request: Request, create: bool) -> str | None:
    """The anonymous visitor's owner key (``chat.ownership``), creating their secret when asked to."""
    if request.user.is_authenticated:
        return None
    if create:
        return ensure_session(request._request)
    return ownership.owner_key(request._request.session)


def owned_conversations(request: Request):
    return Conversation.objects.owned_by(request.user, owner_key_for(request, create=False))


def owner_of(request: Request) -> dict[str, Any]:
    """The fields that make the requester a new conversation's owner."""
    if request.user.is_authenticated:
        return {"owner": request.user}
    return {"owner_key_hash": owner_key_for(request, create=True)}


def new_conversation(request: Request, title: str = "") -> Conversation:
    return Conversation.objects.create(title=title, **owner_of(request))


def client_label(request: Request) -> str:
    """What the audit log hashes: the account, else the client address."""
    if request.user.is_authenticated:
        return f"user:{request.user.pk}"
    return f"ip:{ratelimits.client_ip(None, request._request)}"


def check_rate(request: Request) -> None:
    wait = ratelimits.retry_after(request._request)
    if wait is not None:
        raise RateLimited(wait)


def check_write_rate(request: Request, group: str, rate: str, what: str) -> None:
    wait = ratelimits.hit(request._request, group, rate)
    if wait is not None:
        raise RateLimited(wait, f"Too many {what}. Please wait a moment and try again.")


def start_conversation(request: Request, text: str) -> tuple[Conversation, Message]:
    """A new conversation with its first question, counted against the new-conversation limit
    like ``POST /api/v1/conversations/`` (asking without a conversation must not get round it)."""
    check_write_rate(request, ratelimits.CONVERSATIONS, settings.MEDBOT_CONVERSATION_RATE, "new conversations")
    return services.start_conversation(text, **owner_of(request))


def ask_once(conversation: Conversation, text: str, client: str, question: Message | None = None) -> Message:
    """``services.ask`` holding the conversation's lock; AnswerInProgress (409) if it is taken."""
    try:
        with locks.answering(conversation):
            return services.ask(conversation, text, client, question)
    except locks.ConversationBusy:
        raise AnswerInProgress from None


class LockedStream:
    """The event stream, holding the conversation's lock until the response is closed.

    The WSGI server closes the response whether the stream ran to the end, failed, or was never
    started (a generator closed before it starts runs no ``finally``, hence this class)."""

    def __init__(self, conversation: Conversation, events: Iterator[bytes]) -> None:
        self.conversation = conversation
        self.events = events

    def __iter__(self) -> LockedStream:
        return self

    def __next__(self) -> bytes:
        return next(self.events)

    def close(self) -> None:
        try:
            self.events.close()
        finally:
            locks.release(self.conversation)


def sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def stream_events(conversation: Conversation, question: Message, client: str) -> Iterator[bytes]:
    """Server-Sent Events: one ``status`` event first (``stage: received``: the question is saved
    and the answer is being prepared; it carries the conversation, title included, and the saved
    question, so a client shows both at once), ``piece`` events with text, then ``done`` with the
    saved message, or ``error`` when the answer could not be completed."""
    yield sse(
        "status",
        {
            "stage": "received",
            "conversation": ConversationSerializer(conversation).data,
            "question": MessageSerializer(question).data,
        },
    )
    answer = services.ask_stream(conversation, question.content, client, question)
    try:
        for item in answer:
            if isinstance(item, Message):
                yield sse("done", MessageSerializer(item).data)
            elif isinstance(item, Stage):
                yield sse("status", {"stage": item.name})
            else:
                yield sse("piece", {"text": item})
    except Exception:
        logger.exception("Streaming answer failed")
        yield sse("error", {"detail": "The answer could not be completed. Your question was saved."})
    finally:
        answer.close()  # a client that went away: the partial answer is saved


def streamed_answer(request: Request, conversation: Conversation | None, text: str) -> StreamingHttpResponse:
    """Save the question, then stream its answer as Server-Sent Events (``stream_events``).

    With no conversation, one is started together with the question (``services.start_conversation``):
    a question refused before this point leaves no empty conversation. The question is saved
    before the response starts, so the first event can already name the conversation."""
    if conversation is None:
        conversation, question = start_conversation(request, text)
        locks.acquire(conversation)  # brand new: nothing else can be answering in it
    else:
        try:
            locks.acquire(conversation)
        except locks.ConversationBusy:
            raise AnswerInProgress from None
        try:
            question = services.save_question(conversation, text)
        except BaseException:
            locks.release(conversation)
            raise
    events = LockedStream(conversation, stream_events(conversation, question, client_label(request)))
    response = StreamingHttpResponse(events, content_type="text/event-stream")
    response["Cache-Control"] = "no-store"
    response["X-Accel-Buffering"] = "no"  # tell nginx-style proxies not to buffer the stream
    return response


def wants_events(request: Request) -> bool:
    return "text/event-stream" in request.headers.get("Accept", "")


SSE_DESCRIPTION = (
    "With `Accept: text/event-stream` the answer streams as Server-Sent Events: `status` first "
    '(`{"stage": "received", "conversation", "question"}`: the question is saved and the answer is '
    'being prepared), then `piece` events (`{"text"}`), then `done` with the saved message '
    '(or `error` with `{"detail"}`).'
)


class WordsAnywhereSearch(filters.SearchFilter):
    """Each search word in the title or in *any* message of the conversation. DRF's filter puts
    every word into one join on messages, so two words had to be in the same message."""

    # Each word is a subquery: PostgreSQL took 1.9 s to plan 100 of them and over 45 s for 200
    # (attack review). The first few distinct words are searched; the rest are ignored.
    max_words = 8

    def filter_queryset(self, request: Request, queryset: Any, view: Any) -> Any:
        words = list(dict.fromkeys(word.lower() for word in self.get_search_terms(request)))[: self.max_words]
        fields = getattr(view, "search_fields", None)
        if not words or not fields:
            return queryset
        for word in words:
            match = Q()
            for field in fields:
                match |= Q(**{f"{field}__icontains": word})
            # A subquery per word: a separate join each time, and no duplicate conversations.
            queryset = queryset.filter(pk__in=queryset.model.objects.filter(match).values("pk"))
        return queryset


@extend_schema_view(
    list=extend_schema(
        summary="Your conversations, newest first",
        parameters=[
            OpenApiParameter(
                "search", str, description="Words to find in titles and message text (the first 8 distinct words)."
            )
        ],
    ),
    create=extend_schema(summary="Start a conversation", responses={201: ConversationSerializer, 429: RATE_LIMITED}),
    retrieve=extend_schema(summary="A conversation with its messages"),
    partial_update=extend_schema(summary="Rename a conversation"),
    destroy=extend_schema(summary="Delete a conversation and its messages"),
)
class ConversationViewSet(
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    filter_backends = [WordsAnywhereSearch]
    # Titles and what was said: each word must appear in the title or in one of the messages.
    search_fields = ["title", "messages__content"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request, no owner
            return Conversation.objects.none()
        return owned_conversations(self.request)

    def get_serializer_class(self):
        if self.action == "retrieve":
            return ConversationDetailSerializer
        if self.action == "messages":
            return MessageCreateSerializer if self.request.method == "POST" else MessageSerializer
        return ConversationSerializer

    def perform_create(self, serializer: ConversationSerializer) -> None:
        check_write_rate(self.request, ratelimits.CONVERSATIONS, settings.MEDBOT_CONVERSATION_RATE, "new conversations")
        serializer.instance = new_conversation(self.request, serializer.validated_data.get("title", ""))

    def perform_update(self, serializer: ConversationSerializer) -> None:
        # Only the title: a full save would write back a stale ``answering_since`` (chat.locks).
        conversation = serializer.instance
        conversation.title = serializer.validated_data.get("title", conversation.title)
        conversation.save(update_fields=["title", "updated_at"])

    def finalize_response(self, request: Request, response: HttpResponse, *args: Any, **kwargs: Any) -> HttpResponse:
        response = super().finalize_response(request, response, *args, **kwargs)
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    @extend_schema(
        summary="Download a conversation",
        parameters=[OpenApiParameter("format", str, enum=["json", "md"], description="Default json.")],
        responses={(200, "application/json"): OpenApiTypes.OBJECT, (200, "text/markdown"): OpenApiTypes.STR},
    )
    @action(detail=True, methods=["get"])
    def export(self, request: Request, pk: str | None = None) -> HttpResponse:
        conversation = self.get_object()
        kind = request.query_params.get("format", "json")
        if kind not in ("json", "md"):
            raise ValidationError({"format": "Must be 'json' or 'md'."})
        name = slugify(conversation.title)[:50] or f"conversation-{conversation.pk}"
        if kind == "md":
            response = HttpResponse(services.export_markdown(conversation), content_type="text/markdown; charset=utf-8")
        else:
            data = ConversationDetailSerializer(conversation).data
            data["messages"] = MessageSerializer(conversation.transcript(), many=True).data  # answers by question
            response = JsonResponse(data, json_dumps_params={"indent": 2})
        response["Content-Disposition"] = f'attachment; filename="{name}.{kind}"'
        response["Cache-Control"] = "no-store"
        return response

    @extend_schema(
        methods=["GET"], summary="Messages of a conversation, oldest first", responses=MessageSerializer(many=True)
    )
    @extend_schema(
        methods=["POST"],
        summary="Ask in this conversation",
        description=f"Returns the saved assistant message. {SSE_DESCRIPTION}",
        request=MessageCreateSerializer,
        responses={201: MessageSerializer, 409: BUSY, 429: RATE_LIMITED},
    )
    @action(
        detail=True,
        methods=["get", "post"],
        renderer_classes=[renderers.JSONRenderer, EventStreamRenderer],
    )
    def messages(self, request: Request, pk: str | None = None) -> HttpResponse:
        conversation = self.get_object()
        if request.method == "GET":
            page = self.paginate_queryset(conversation.messages.all())
            return self.get_paginated_response(MessageSerializer(page, many=True).data)
        serializer = MessageCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if locks.busy(conversation):
            raise AnswerInProgress  # before the rate limit: a refused ask is not a question asked
        check_rate(request)
        text = serializer.validated_data["content"]
        if wants_events(request):
            return streamed_answer(request, conversation, text)
        message = ask_once(conversation, text, client_label(request))
        return Response(MessageSerializer(message).data, status=status.HTTP_201_CREATED, headers=NO_STORE)


class AskView(APIView):
    """One question in, one answer out; starts a conversation unless one is given (only once the
    question passed validation and the rate limit, and together with it)."""

    renderer_classes = [renderers.JSONRenderer, EventStreamRenderer]

    @extend_schema(
        summary="Ask a question",
        description=f"Without `conversation`, starts one with this question. {SSE_DESCRIPTION}",
        request=AskSerializer,
        responses={
            200: AskResponseSerializer,
            400: OpenApiTypes.OBJECT,
            404: ErrorSerializer,
            409: BUSY,
            429: RATE_LIMITED,
        },
    )
    def post(self, request: Request) -> Response:
        serializer = AskSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        text = serializer.validated_data["question"]
        conversation_id = serializer.validated_data.get("conversation")
        conversation = None
        if conversation_id is not None:
            conversation = get_object_or_404(owned_conversations(request), pk=conversation_id)
            if locks.busy(conversation):
                raise AnswerInProgress  # before the rate limit: a refused ask is not a question asked
        check_rate(request)
        if wants_events(request):
            return streamed_answer(request, conversation, text)
        question = None
        if conversation is None:
            conversation, question = start_conversation(request, text)
        message = ask_once(conversation, text, client_label(request), question)
        body = {
            "answer": message.content,
            "source": message.source,
            "triage_level": message.triage_level,
            "citations": message.citations,
            "disclaimer": message.disclaimer,
            "conversation": conversation.pk,
            "message": MessageSerializer(message).data,
        }
        return Response(body, headers=NO_STORE)


class LegacyAskView(APIView):
    """The original project's endpoint: ``{"question"}`` → ``{"response", "question"}``."""

    @extend_schema(
        summary="Ask (original API)",
        request=LegacyAskSerializer,
        responses={200: LegacyAskResponseSerializer, 400: OpenApiTypes.OBJECT, 429: RATE_LIMITED},
    )
    def post(self, request: Request) -> Response:
        serializer = LegacyAskSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        check_rate(request)
        question = serializer.validated_data["question"]
        conversation, saved = start_conversation(request, question)
        message = ask_once(conversation, question, client_label(request), saved)
        return Response(
            {"response": f"{message.content}\n\n{message.disclaimer}", "question": question}, headers=NO_STORE
        )


class FeedbackView(APIView):
    @extend_schema(
        summary="Rate an answer",
        description="One rating per answer: rating it again replaces the earlier rating (200).",
        request=FeedbackSerializer,
        responses={200: FeedbackSerializer, 201: FeedbackSerializer, 404: ErrorSerializer, 429: RATE_LIMITED},
    )
    def post(self, request: Request, pk: int) -> Response:
        message = get_object_or_404(
            Message.objects.filter(conversation__in=owned_conversations(request), role=Message.Role.ASSISTANT), pk=pk
        )
        serializer = FeedbackSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        check_write_rate(request, ratelimits.FEEDBACK, settings.MEDBOT_FEEDBACK_RATE, "ratings")
        feedback, created = rate_answer(message, serializer.validated_data)
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(FeedbackSerializer(feedback).data, status=code, headers=NO_STORE)


def rate_answer(message: Message, values: dict[str, Any]) -> tuple[Feedback, bool]:
    """Create the answer's one rating, or replace it. Returns (feedback, created).

    Two ratings racing on one answer: the loser of the unique constraint updates instead."""
    values = {"reason": "", "comment": "", **values}
    try:
        with transaction.atomic():
            return Feedback.objects.update_or_create(message=message, defaults=values)
    except IntegrityError:
        Feedback.objects.filter(message=message).update(**values)
        return Feedback.objects.get(message=message), False

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiExample, extend_schema_serializer
from rest_framework import serializers

from chat.models import Conversation, Feedback, Message, Source, TriageLevel
from inference.text import clean_input


class QuestionField(serializers.CharField):
    """A question: 1..2000 characters after control characters are stripped. NUL is refused."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("max_length", settings.MEDBOT_MAX_QUESTION_CHARS)
        kwargs.setdefault("help_text", f"1 to {settings.MEDBOT_MAX_QUESTION_CHARS} characters.")
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            raise serializers.ValidationError("Must be a string.")
        # Both checked on the raw text: cleaning would silently drop NULs and shorten it.
        if "\x00" in data:
            raise serializers.ValidationError("Null characters are not allowed.")
        if self.max_length is not None and len(data) > self.max_length:
            raise serializers.ValidationError(f"Ensure this field has no more than {self.max_length} characters.")
        text = clean_input(super().to_internal_value(data))
        if not text:
            raise serializers.ValidationError("This field may not be blank.")
        return text


class CitationSerializer(serializers.Serializer):
    title = serializers.CharField()
    publisher = serializers.CharField(allow_blank=True)
    url = serializers.CharField(allow_blank=True, help_text="Empty for MedBot's own curated entries.")
    source = serializers.CharField(help_text="The knowledge source's name.")


class MessageSerializer(serializers.ModelSerializer):
    citations = CitationSerializer(many=True, read_only=True, help_text="The sources the answer came from.")

    class Meta:
        model = Message
        fields = [
            "id",
            "conversation",
            "reply_to",
            "role",
            "content",
            "source",
            "matched_rule",
            "disclaimer",
            "adapter_version",
            "latency_ms",
            "tokens",
            "partial",
            "triage_level",
            "triage_note",
            "fallback",
            "citations",
            "created_at",
        ]
        read_only_fields = fields


class MessageCreateSerializer(serializers.Serializer):
    content = QuestionField()


class ConversationSerializer(serializers.ModelSerializer):
    title = serializers.CharField(max_length=200, required=False, allow_blank=True)

    class Meta:
        model = Conversation
        fields = ["id", "title", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]

    def validate_title(self, value: str) -> str:
        return clean_input(value).replace("\n", " ")


class ConversationDetailSerializer(ConversationSerializer):
    messages = MessageSerializer(many=True, read_only=True)

    class Meta(ConversationSerializer.Meta):
        fields = [*ConversationSerializer.Meta.fields, "messages"]


@extend_schema_serializer(
    examples=[
        # What the docs page fills in for "Try it out": a real question, and no conversation id
        # (a made-up one would be someone's, or a 404).
        OpenApiExample("A new question", value={"question": "How can I lower my blood pressure?"}, request_only=True),
        OpenApiExample(
            "A follow-up in a conversation",
            value={"question": "And how is it treated?", "conversation": 12},
            request_only=True,
        ),
    ]
)
class AskSerializer(serializers.Serializer):
    question = QuestionField()
    conversation = serializers.IntegerField(required=False, min_value=1, help_text="Continue this conversation.")


class AskResponseSerializer(serializers.Serializer):
    answer = serializers.CharField()
    source = serializers.ChoiceField(choices=[choice for choice, _ in Source.choices])
    triage_level = serializers.ChoiceField(choices=[choice for choice, _ in TriageLevel.choices])
    citations = CitationSerializer(many=True)
    disclaimer = serializers.CharField()
    conversation = serializers.IntegerField()
    message = MessageSerializer()


class LegacyAskSerializer(serializers.Serializer):
    question = QuestionField()


class LegacyAskResponseSerializer(serializers.Serializer):
    response = serializers.CharField(help_text="The answer followed by the disclaimer.")
    question = serializers.CharField()


class FeedbackSerializer(serializers.ModelSerializer):
    rating = serializers.ChoiceField(choices=[1, -1])
    comment = serializers.CharField(max_length=1000, required=False, allow_blank=True)

    class Meta:
        model = Feedback
        fields = ["id", "message", "rating", "reason", "comment", "created_at"]
        read_only_fields = ["id", "message", "created_at"]


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()

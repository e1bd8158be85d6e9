"""The optional audit log: who (pseudonymously), when, which source, how fast."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from inference.models import AuditLog


def client_id(raw: str) -> str:
    """A keyed hash of the client (IP, user or session): stable, but not reversible without the key."""
    key = (settings.MEDBOT_AUDIT_SALT or settings.SECRET_KEY).encode()
    return hmac.new(key, raw.encode(), hashlib.sha256).hexdigest()[:32]


def record(
    *, client: str, conversation_id: int | None, source: str, latency_ms: int, adapter_version: str, question: str
) -> AuditLog | None:
    if not settings.MEDBOT_AUDIT_LOG:
        return None
    return AuditLog.objects.create(
        client_id=client_id(client),
        conversation_id=conversation_id,
        source=source,
        latency_ms=latency_ms,
        adapter_version=adapter_version,
        question=question if settings.MEDBOT_AUDIT_LOG_TEXT else "",
    )


def purge(older_than_days: int) -> int:
    cutoff = timezone.now() - timedelta(days=older_than_days)
    deleted, _ = AuditLog.objects.filter(created_at__lt=cutoff).delete()
    return deleted

"""How anonymous visitors own their conversations: a random owner secret kept in their session.

The session key is not the credential. It travels in every request, it changes at login, and
anything that shows it (the admin once did) hands over the visitor's history. Instead the
session holds a random secret, and a conversation stores only the secret's SHA-256
(``Conversation.owner_key_hash``). Reading the database, the admin or the logs gives nothing
that authenticates as the visitor: the secret is in the session's data alone, and the hash
cannot be turned back into it (it is 256 random bits, so a plain hash is enough).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from importlib import import_module

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

SECRET_SESSION_KEY = "medbot_owner_secret"  # noqa: S105 (the name of a session entry)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def owner_key(session: SessionBase, create: bool = False) -> str | None:
    """The hash that owns this session's anonymous conversations, or None when it has no secret.

    With ``create`` a secret is made; the session middleware then saves the session and sets its
    cookie with the response."""
    secret = session.get(SECRET_SESSION_KEY)
    if not secret:
        if not create:
            return None
        secret = new_secret()
        session[SECRET_SESSION_KEY] = secret
    return hash_secret(secret)


# A new visitor's conversation is saved before their session is (the session middleware saves it
# with the response), so anything touched this recently is left alone by the purge.
PURGE_GRACE = timedelta(hours=1)
_PURGE_BATCH = 500  # owner keys per DELETE, well under every database's limit on query parameters


def live_owner_keys() -> set[str]:
    """The owner keys held by unexpired sessions: whose anonymous conversations can still be reached.

    Raises ImproperlyConfigured unless sessions live in the database (Django's default, or
    cached_db): with sessions only in a cache there is no list of live ones to check against."""
    store = import_module(settings.SESSION_ENGINE).SessionStore
    if not issubclass(store, DatabaseSessionStore):
        raise ImproperlyConfigured(
            f"Purging anonymous conversations needs database sessions, not {settings.SESSION_ENGINE}"
        )
    sessions = store.get_model_class().objects.filter(expire_date__gt=timezone.now())
    keys = set()
    for data in sessions.values_list("session_data", flat=True).iterator(chunk_size=2000):
        secret = store().decode(data).get(SECRET_SESSION_KEY)  # a session that does not decode gives {}
        if secret:
            keys.add(hash_secret(secret))
    return keys


def purge_anonymous_conversations(dry_run: bool = False) -> int:
    """Deletes anonymous conversations whose owner secret is in no unexpired session (the
    visitor's session expired or was cleared, so nobody can open them again), with their
    messages. Returns how many conversations were deleted, or with ``dry_run`` how
    many would be. Signed-in users' conversations are never touched."""
    from chat.models import Conversation

    # Conversations first, then sessions: an owner's session is saved by the end of each request,
    # so the grace period covers the one request that made the conversation before its session.
    stale = Conversation.objects.filter(owner__isnull=True, updated_at__lt=timezone.now() - PURGE_GRACE)
    orphaned = sorted(set(stale.values_list("owner_key_hash", flat=True)) - live_owner_keys())
    purged = 0
    for start in range(0, len(orphaned), _PURGE_BATCH):
        batch = stale.filter(owner_key_hash__in=orphaned[start : start + _PURGE_BATCH])
        if dry_run:
            purged += batch.count()
        else:
            purged += batch.delete()[1].get(Conversation._meta.label, 0)
    return purged

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

from django.contrib.sessions.backends.base import SessionBase

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

"""Version tokens in the shared cache that tell every worker when curated data changed.

A save to a rule, a disclaimer or the knowledge base bumps a token; each worker compares the token with the one its
in-memory index was built from, and answer-cache keys include the tokens, so stale answers are
never served again. In a cache outage the token is "unknown" and the tables' fingerprint
(below) still tells of changes; callers never fail for it.

Without a shared cache (development: each process keeps its own local memory), a change made by
another process, such as ``make import-medquad`` in a second terminal while ``make run`` serves,
never reaches this one's cache. So the token also carries a fingerprint of the tables themselves
(row count and latest change), read at most every ``FINGERPRINT_SECONDS``. With a shared cache it
is read too, more rarely (``SHARED_FINGERPRINT_SECONDS``): a command that changed the tables while
the cache was down (an import during a Redis restart) exits with its signal unsent, and the
fingerprint is what still tells the workers.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

from django.apps import apps
from django.conf import settings
from django.db.models import Count, Max

from medbot_site import cache_guard

logger = logging.getLogger(__name__)

RULES = "rules"
KNOWLEDGE = "knowledge"
DISCLAIMER = "disclaimer"
_TIMEOUT = None  # keep until changed
UNKNOWN = "unknown"  # what ``current`` says when the cache cannot tell


# The tables behind each token, by app label: every one has an ``updated_at`` that saves and imports set.
WATCHED: dict[str, tuple[str, ...]] = {
    RULES: ("inference.FallbackRule",),
    KNOWLEDGE: ("knowledge.KnowledgeSource", "knowledge.Passage", "knowledge.Alias"),
    "triage": ("inference.Concept", "inference.EmergencyRule"),  # inference.triage.TRIAGE
}
FINGERPRINT_SECONDS = 2.0
SHARED_FINGERPRINT_SECONDS = 30.0
_fingerprints: dict[str, tuple[float, str]] = {}
_fingerprints_lock = threading.Lock()


def _process_local_cache() -> bool:
    return settings.CACHES["default"]["BACKEND"].endswith("LocMemCache")


def _fingerprint(name: str) -> str:
    """Row counts and latest changes of the tables behind ``name``, read again after
    ``FINGERPRINT_SECONDS`` (``SHARED_FINGERPRINT_SECONDS`` with a shared cache, where the token
    tells of every change whose signal got through); the last reading while the tables cannot be read."""
    labels = WATCHED.get(name)
    if not labels:
        return ""
    every = FINGERPRINT_SECONDS if _process_local_cache() else SHARED_FINGERPRINT_SECONDS
    now = time.monotonic()
    with _fingerprints_lock:
        read_at, value = _fingerprints.get(name, (float("-inf"), ""))
    if now - read_at < every:
        return value
    parts = []
    try:
        for label in labels:
            row = apps.get_model(label).objects.aggregate(rows=Count("pk"), last=Max("updated_at"))
            parts.append(f"{row['rows']}@{row['last'].isoformat() if row['last'] else '-'}")
    except Exception:  # DatabaseError, or no database at all: a version probe never breaks triage
        # Keep the last reading (no rebuild for a passing failure), and try again only later.
        logger.warning("Cannot read the %s tables for their version; keeping the last reading", name)
        with _fingerprints_lock:
            _fingerprints[name] = (now, value)
        return value
    value = "|".join(parts)
    with _fingerprints_lock:
        _fingerprints[name] = (now, value)
    return value


def _key(name: str) -> str:
    return f"medbot:version:{name}"


# Changes this process could not signal while the cache was down; sent once it is back.
_pending: set[str] = set()


def current(name: str) -> str:
    """The version token with the tables' fingerprint. With the cache down the token is "unknown",
    and the fingerprint alone still tells of a change (a curator disabling a source during a Redis
    outage); "unknown" alone when neither can say (callers then keep what they have)."""
    value = _token(name)
    fingerprint = _fingerprint(name)
    return f"{value}:{fingerprint}" if fingerprint else value


def forget_fingerprints() -> None:
    """Read the tables again on the next ``current`` (tests, after a change in this process)."""
    with _fingerprints_lock:
        _fingerprints.clear()


def _token(name: str) -> str:
    if not cache_guard.available():
        return UNKNOWN  # backing off after a failure: no call, no wait
    if _pending:
        _flush_pending()
    value = cache_guard.safe_get(_key(name))
    if value is not None:
        return value
    if not cache_guard.available():
        return UNKNOWN  # that read just failed
    value = uuid.uuid4().hex
    added = cache_guard.safe_add(_key(name), value, _TIMEOUT)
    if added is None:
        return UNKNOWN
    return value if added else (cache_guard.safe_get(_key(name)) or value)


def bump(name: str) -> None:
    if not cache_guard.safe_set(_key(name), uuid.uuid4().hex, _TIMEOUT):
        _pending.add(name)
        logger.warning(
            "Cache unavailable: could not signal a %s change; it is sent when the cache is back, and workers "
            "see it from the tables within %d s",
            name,
            SHARED_FINGERPRINT_SECONDS,
        )


def _flush_pending() -> None:
    for name in list(_pending):
        if cache_guard.safe_set(_key(name), uuid.uuid4().hex, _TIMEOUT):
            _pending.discard(name)

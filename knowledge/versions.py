"""Version tokens in the shared cache that tell every worker when curated data changed.

A save to a rule, a disclaimer or the knowledge base bumps a token; each worker compares the token with the one its
in-memory index was built from, and answer-cache keys include the tokens, so stale answers are
never served again. A cache outage means "unknown version": callers rebuild rather than fail.
"""

from __future__ import annotations

import logging
import uuid

from medbot_site import cache_guard

logger = logging.getLogger(__name__)

RULES = "rules"
KNOWLEDGE = "knowledge"
DISCLAIMER = "disclaimer"
_TIMEOUT = None  # keep until changed


def _key(name: str) -> str:
    return f"medbot:version:{name}"


# Changes this process could not signal while the cache was down; sent once it is back.
_pending: set[str] = set()


def current(name: str) -> str:
    """The version token, or "unknown" when the cache cannot say (callers then keep what they have)."""
    if not cache_guard.available():
        return "unknown"  # backing off after a failure: no call, no wait
    if _pending:
        _flush_pending()
    value = cache_guard.safe_get(_key(name))
    if value is not None:
        return value
    if not cache_guard.available():
        return "unknown"  # that read just failed
    value = uuid.uuid4().hex
    added = cache_guard.safe_add(_key(name), value, _TIMEOUT)
    if added is None:
        return "unknown"
    return value if added else (cache_guard.safe_get(_key(name)) or value)


def bump(name: str) -> None:
    if not cache_guard.safe_set(_key(name), uuid.uuid4().hex, _TIMEOUT):
        _pending.add(name)
        logger.warning("Cache unavailable: could not signal a %s change; it is sent when the cache is back", name)


def _flush_pending() -> None:
    for name in list(_pending):
        if cache_guard.safe_set(_key(name), uuid.uuid4().hex, _TIMEOUT):
            _pending.discard(name)

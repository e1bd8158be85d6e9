"""Version tokens in the shared cache that tell every worker when curated data changed.

A save to a rule, a disclaimer or the knowledge base bumps a token; each worker compares the token with the one its
in-memory index was built from, and answer-cache keys include the tokens, so stale answers are
never served again. A cache outage means "unknown version": callers rebuild rather than fail.
"""

from __future__ import annotations

import logging
import uuid

from django.core.cache import cache

logger = logging.getLogger(__name__)

RULES = "rules"
KNOWLEDGE = "knowledge"
DISCLAIMER = "disclaimer"
_TIMEOUT = None  # keep until changed


def _key(name: str) -> str:
    return f"medbot:version:{name}"


def current(name: str) -> str:
    try:
        value = cache.get(_key(name))
        if value is None:
            value = uuid.uuid4().hex
            if not cache.add(_key(name), value, _TIMEOUT):
                value = cache.get(_key(name)) or value
        return value
    except Exception:
        logger.warning("Cache unreachable while reading the %s version", name, exc_info=True)
        return "unknown"


def bump(name: str) -> None:
    try:
        cache.set(_key(name), uuid.uuid4().hex, _TIMEOUT)
    except Exception:
        logger.warning("Cache unreachable: could not signal a %s change", name, exc_info=True)

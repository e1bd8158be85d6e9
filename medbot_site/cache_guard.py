"""Fail fast when the shared cache (Redis) is in trouble.

A dead Redis refuses connections at once, but a hung one makes every call wait for the socket
timeout (1 s), several times per answer, and each failure used to log a traceback. After one
failure this process skips the cache for ``MEDBOT_CACHE_BACKOFF_SECONDS`` and callers get their
default (a cache miss, "not limited"); the next call after the back-off tries Redis again. The
outage is logged once per back-off interval, with how many calls were skipped since.

Use the ``safe_*`` functions for plain cache calls and :func:`call` to guard anything else that
talks to the cache (django-ratelimit's counters, say). State is per process, which is enough:
each worker pays the timeout once per interval, not once per call.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

T = TypeVar("T")

_lock = threading.Lock()
_skip_until = 0.0  # monotonic time until which the cache is skipped
_last_error = ""
_skipped = 0  # calls skipped since the last log line


def _backoff() -> float:
    return float(getattr(settings, "MEDBOT_CACHE_BACKOFF_SECONDS", 30))


def available() -> bool:
    """False while backing off after a failure: callers should not touch the cache."""
    return time.monotonic() >= _skip_until


def degraded() -> str | None:
    """The last error while the back-off lasts (for readiness), else None."""
    return None if available() else _last_error


def mark_failure(error: BaseException, what: str = "cache") -> None:
    """Start (or restart) the back-off, and log once per interval."""
    global _skip_until, _last_error, _skipped
    with _lock:
        was_available = time.monotonic() >= _skip_until
        _skip_until = time.monotonic() + _backoff()
        _last_error = f"{type(error).__name__}: {error}"
        skipped, _skipped = _skipped, 0
    if was_available:
        logger.warning(
            "Shared cache failed during %s (%s); skipping the cache for %.0f s (%d calls skipped before this)",
            what,
            _last_error,
            _backoff(),
            skipped,
        )


def reset() -> None:
    """Forget past failures (tests, and after an operator fixed Redis)."""
    global _skip_until, _last_error, _skipped
    with _lock:
        _skip_until, _last_error, _skipped = 0.0, "", 0


def call(fn: Callable[..., T], *args: Any, default: T, what: str = "cache", **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``, or ``default`` without calling it while backing off or when it raises."""
    global _skipped
    if not available():
        with _lock:
            _skipped += 1
        return default
    try:
        return fn(*args, **kwargs)
    except Exception as error:
        mark_failure(error, what)
        return default


def safe_get(key: str, default: Any = None) -> Any:
    return call(cache.get, key, default, default=default, what="get")


def safe_set(key: str, value: Any, timeout: float | None = None) -> bool:
    """True when stored."""
    return call(lambda: cache.set(key, value, timeout) is not False, default=False, what="set")


def safe_add(key: str, value: Any, timeout: float | None = None) -> bool | None:
    """True when added, False when the key exists, None when the cache is unavailable."""
    return call(cache.add, key, value, timeout, default=None, what="add")


def safe_delete(key: str) -> bool:
    return call(lambda: bool(cache.delete(key)), default=False, what="delete")

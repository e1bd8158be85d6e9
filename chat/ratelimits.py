"""Rate limits, counted in the shared cache so they hold across workers.

- Asking: per account, or per client address for anonymous visitors. A young account (younger
  than ``MEDBOT_YOUNG_ACCOUNT_HOURS``) is counted against its address too, so opening accounts
  does not reset the limit.
- Writes that cost a row: new conversations, feedback, new anonymous sessions; sign-ups per
  address.
- Logins: failed attempts per address and per account name; past either limit every attempt is
  refused, the right password included, until the window ends (brute-force protection). Each
  attempt is counted before its password is checked, so attempts sent at once cannot all slip
  under the limit (see "failed log-ins" below).

When the cache is down or hung every limit fails open (answering matters more) and the outage
is logged once per back-off interval by ``medbot_site.cache_guard``, which also stops us waiting
on a hung Redis for every request.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from django.utils import timezone
from django_ratelimit.core import get_usage

from medbot_site import cache_guard

logger = logging.getLogger(__name__)

GROUP = "medbot-ask"
CONVERSATIONS = "medbot-conversations"
FEEDBACK = "medbot-feedback"
NEW_SESSIONS = "medbot-new-sessions"
SIGNUPS = "medbot-signups"
LOGIN_FAILURES_ADDRESS = "medbot-login-failures-address"
LOGIN_FAILURES_ACCOUNT = "medbot-login-failures-account"

Key = Callable[[str, HttpRequest], str]


def client_ip(group: str | None, request: HttpRequest) -> str:
    """The client address: REMOTE_ADDR, or the right-most entry of the trusted proxy's header.

    The right-most entry is the one our proxy wrote; anything left of it came from the client
    and could be forged to dodge the limit."""
    header = settings.MEDBOT_TRUSTED_PROXY_HEADER
    if header:
        last = request.META.get(header, "").split(",")[-1].strip()
        if last:
            return last
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def ip_key(group: str, request: HttpRequest) -> str:
    return f"ip:{client_ip(group, request)}"


def rate_key(group: str, request: HttpRequest) -> str:
    """Signed-in users are limited per account; everyone else per client address (a new
    session cookie does not reset the limit)."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    return ip_key(group, request)


def _usage(request: HttpRequest, group: str, rate: str, key: Key, increment: bool) -> dict[str, Any] | None:
    """django-ratelimit's count, or None when limiting is off or the cache is unavailable."""
    if not rate:
        return None
    return cache_guard.call(
        get_usage, request, group=group, key=key, rate=rate, increment=increment, default=None, what="rate limit"
    )


def _wait(usage: dict[str, Any] | None) -> int | None:
    if usage is None or not usage["should_limit"]:
        return None
    return max(1, int(usage["time_left"]))


def hit(request: HttpRequest, group: str, rate: str, key: Key = rate_key) -> int | None:
    """Count this request in ``group``; seconds to wait when over ``rate``, else None."""
    return _wait(_usage(request, group, rate, key, increment=True))


def is_young(user: Any) -> bool:
    hours = settings.MEDBOT_YOUNG_ACCOUNT_HOURS
    return bool(hours) and user.date_joined > timezone.now() - timedelta(hours=hours)


def retry_after(request: HttpRequest) -> int | None:
    """Count this question; seconds to wait when over the limit, else None."""
    rate = settings.MEDBOT_RATE_LIMIT
    waits = [hit(request, GROUP, rate)]
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and is_young(user):
        waits.append(hit(request, GROUP, rate, ip_key))
    return max((wait for wait in waits if wait is not None), default=None)


def _account_key(username: str) -> Key:
    return lambda group, request: f"account:{username.strip().lower()}"


# --- failed log-ins ----------------------------------------------------------------------------
#
# Counted before the password is checked, not after: checking first let N attempts sent at once
# all pass the check before any failure was recorded (N guesses against a limit of 10). Each
# attempt takes a place in the count with one atomic cache increment (``add`` then ``incr``);
# an attempt whose place is past the limit is refused, and so is every one after it, however
# many arrive together. A successful log-in (or a refused one) gives its place back, so the
# count is of failures, as the settings say.

_COUNTED = "_medbot_login_attempt"  # set on a request whose attempt is already counted
PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass
class LoginAttempt:
    """One log-in attempt's places in the failed-login counts: give them back with ``release``."""

    keys: list[str] = field(default_factory=list)
    wait: int | None = None  # seconds to wait, when the attempt is refused


def _take_place(group: str, rate: str, value: str) -> tuple[str, int] | None:
    """Count one more in ``group`` for ``value`` in this fixed window. Returns the counter's
    cache key and the seconds to wait when the count is now past the limit (0 when it is not),
    or None when the cache is unavailable (limits fail open)."""
    count, _, period_text = rate.partition("/")
    limit = int(count)
    period = int(period_text[:-1] or 1) * PERIODS[period_text[-1].lower()]  # "15m" -> 900
    now = int(time.time())
    window = now // period
    digest = hashlib.sha256(value.encode()).hexdigest()[:32]
    key = f"medbot-login:{group}:{limit}/{period}:{digest}:{window}"

    def increment() -> int:
        cache.add(key, 0, period + 60)  # atomic: creates the counter only when it is missing
        try:
            return cache.incr(key)  # atomic in Redis and in the local-memory cache
        except ValueError:  # expired between add and incr: this attempt is the first
            cache.add(key, 1, period + 60)
            return 1

    counted = cache_guard.call(increment, default=None, what="login limit")
    if counted is None:
        return None
    return key, max(1, (window + 1) * period - now) if counted > limit else 0


def begin_login_attempt(request: HttpRequest, username: str) -> LoginAttempt:
    """Count this attempt as a failure before the password is checked. ``wait`` is set when the
    address or the account name is now past its limit: the attempt must be refused (and
    released, since no password was checked)."""
    attempt = LoginAttempt()
    waits = []
    for group, rate, key in _login_limits(username):
        place = _take_place(group, rate, key(group, request)) if rate else None
        if place is not None:
            attempt.keys.append(place[0])
            waits.append(place[1])
    attempt.wait = max(waits, default=0) or None
    setattr(request, _COUNTED, attempt)
    return attempt


def release(attempt: LoginAttempt) -> None:
    """Give back the attempt's places: it succeeded, or it was refused before any password check."""
    for key in attempt.keys:
        cache_guard.call(_decrement, key, default=None, what="login limit")
    attempt.keys = []


def _decrement(key: str) -> None:
    with contextlib.suppress(ValueError):  # the window ended meanwhile: nothing to give back
        cache.decr(key)


def record_login_failure(request: HttpRequest, username: str) -> None:
    """Count a failed password check. One made through our log-in forms was counted before the
    check (``begin_login_attempt``); any other (``authenticate()`` called elsewhere) counts here."""
    if getattr(request, _COUNTED, None) is not None:
        return
    for group, rate, key in _login_limits(username):
        if rate:
            _take_place(group, rate, key(group, request))


def _login_limits(username: str) -> list[tuple[str, str, Key]]:
    return [
        (LOGIN_FAILURES_ADDRESS, settings.MEDBOT_LOGIN_FAILURES_PER_ADDRESS, ip_key),
        (LOGIN_FAILURES_ACCOUNT, settings.MEDBOT_LOGIN_FAILURES_PER_ACCOUNT, _account_key(username)),
    ]

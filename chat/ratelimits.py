"""Rate limits, counted in the shared cache so they hold across workers.

- Asking: per account, or per client address for anonymous visitors. A young account (younger
  than ``MEDBOT_YOUNG_ACCOUNT_HOURS``) is counted against its address too, so opening accounts
  does not reset the limit.
- Writes that cost a row: new conversations, feedback, new anonymous sessions; sign-ups per
  address.
- Logins: failed attempts per address and per account name; past either limit every attempt is
  refused, the right password included, until the window ends (brute-force protection).

When the cache is down or hung every limit fails open (answering matters more) and the outage
is logged once per back-off interval by ``medbot_site.cache_guard``, which also stops us waiting
on a hung Redis for every request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
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


def _wait(usage: dict[str, Any] | None, at_limit: bool = False) -> int | None:
    if usage is None:
        return None
    over = usage["count"] >= usage["limit"] if at_limit else usage["should_limit"]
    return max(1, int(usage["time_left"])) if over else None


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


def login_wait(request: HttpRequest, username: str) -> int | None:
    """Seconds until this address, or this account name, may try to log in again; else None."""
    waits = [_wait(_usage(request, *limit, increment=False), at_limit=True) for limit in _login_limits(username)]
    return max((wait for wait in waits if wait is not None), default=None)


def record_login_failure(request: HttpRequest, username: str) -> None:
    for limit in _login_limits(username):
        _usage(request, *limit, increment=True)


def _login_limits(username: str) -> list[tuple[str, str, Key]]:
    return [
        (LOGIN_FAILURES_ADDRESS, settings.MEDBOT_LOGIN_FAILURES_PER_ADDRESS, ip_key),
        (LOGIN_FAILURES_ACCOUNT, settings.MEDBOT_LOGIN_FAILURES_PER_ACCOUNT, _account_key(username)),
    ]

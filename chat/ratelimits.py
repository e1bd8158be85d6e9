"""Rate limits on asking, counted in the shared cache so they hold across workers."""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import HttpRequest
from django_ratelimit.core import get_usage

logger = logging.getLogger(__name__)

GROUP = "medbot-ask"


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


def rate_key(group: str, request: HttpRequest) -> str:
    """Signed-in users are limited per account; everyone else per client address (a new
    session cookie does not reset the limit)."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    return f"ip:{client_ip(group, request)}"


def retry_after(request: HttpRequest) -> int | None:
    """Count this request; seconds to wait when over the limit, else None.

    If the cache (Redis) is down the limit fails open: answering matters more, and the
    outage is logged (and visible on /health/ready)."""
    rate = settings.MEDBOT_RATE_LIMIT
    if not rate:
        return None
    try:
        usage = get_usage(request, group=GROUP, key=rate_key, rate=rate, increment=True)
    except Exception:
        logger.warning("Rate-limit store unreachable; letting the request through", exc_info=True)
        return None
    if usage is None or not usage["should_limit"]:
        return None
    return max(1, int(usage["time_left"]))

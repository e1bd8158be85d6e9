"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

import logging

from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from medbot_site import cache_guard

logger = logging.getLogger(__name__)


@never_cache
@require_GET
def live(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return True
    except Exception:
        logger.warning("Readiness: database unreachable", exc_info=True)
        return False


def _cache_state() -> str:
    """The cache's state, "ok" or "degraded": answers still work without the cache (rate limits fail open, the
    answer cache is skipped), so a cache outage must not take every replica out of rotation."""
    if not cache_guard.available():
        return "degraded"  # backing off after a failure: no probe, no wait

    def probe() -> bool:
        cache.set("medbot:health", "1", 5)
        return cache.get("medbot:health") == "1"

    return "ok" if cache_guard.call(probe, default=False, what="readiness") else "degraded"


@never_cache
@require_GET
def ready(request: HttpRequest) -> JsonResponse:
    """200 when the database answers; 503 when it does not. The cache ("ok" or "degraded") and
    the engine's state (off, loading, ready or failed) and adapter version are reported but do
    not fail readiness: without them answers still come, from the knowledge base. A remote
    engine's server is probed here. Only the status is shown; why something failed (error
    text, paths) goes to the log."""
    from inference.engine import get_manager

    database = _database_ok()
    checks = {"database": database, "cache": _cache_state()}
    engine = get_manager().public_status(probe=True)
    ok = database
    body = {"status": "ok" if ok else "unavailable", "checks": checks, "engine": engine}
    return JsonResponse(body, status=200 if ok else 503)

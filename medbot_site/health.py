"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

import logging

from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

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


def _cache_ok() -> bool:
    try:
        cache.set("medbot:health", "1", 5)
        return cache.get("medbot:health") == "1"
    except Exception:
        logger.warning("Readiness: cache unreachable", exc_info=True)
        return False


@never_cache
@require_GET
def ready(request: HttpRequest) -> JsonResponse:
    """200 when the database and cache answer. The engine's state is reported but does not
    fail readiness: while the model loads or is unavailable, answers come from the rules."""
    from inference.engine import engine_status

    checks = {"database": _database_ok(), "cache": _cache_ok()}
    engine = engine_status()
    ok = all(checks.values())
    body = {"status": "ok" if ok else "unavailable", "checks": checks, "engine": engine}
    return JsonResponse(body, status=200 if ok else 503)

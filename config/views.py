"""Cross-cutting views: the health check."""

from __future__ import annotations

import logging

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)


@require_GET
@never_cache
def healthz(request: HttpRequest) -> HttpResponse:
    """200 `ok` when the database and, where configured, Redis answer; else 503."""
    problems = []
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:  # any driver error means "not healthy"
        logger.warning("healthz: database check failed", exc_info=True)
        problems.append("database")
    if settings.REDIS_URL:
        try:
            client = redis.Redis.from_url(
                settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1
            )
            client.ping()
        except redis.RedisError:
            logger.warning("healthz: redis check failed", exc_info=True)
            problems.append("redis")
    if problems:
        return HttpResponse(
            "unavailable: " + ", ".join(problems), status=503, content_type="text/plain"
        )
    return HttpResponse("ok", content_type="text/plain")


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """404: JSON under /api/ (the partner API's error shape), the page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse(
            {"error": {"code": "not_found", "message": "not found"}}, status=404
        )
    return defaults.page_not_found(request, exception)

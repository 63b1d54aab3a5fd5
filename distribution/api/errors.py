"""Every partner API error as `{"error": {"code": ..., "message": ...}}` (SPEC §4.4).

ninja's own answers are replaced: its validation errors (422 by default) and
unparsable bodies are 400, its 401 and 429 get our shape, an unexpected
exception is logged and answered as JSON (never Django's HTML page).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    JsonResponse,
)
from ninja import NinjaAPI
from ninja.errors import HttpError, ValidationError

from distribution.partners.errors import PartnerApiError

logger = logging.getLogger(__name__)

CODES = {
    400: "invalid",
    401: "unauthorized",
    402: "insufficient_balance",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    429: "rate_limited",
}
MESSAGES = {
    400: "invalid request",
    401: "the request is not signed by a valid key",
    404: "not found",
    405: "method not allowed",
    429: "too many requests for this key; slow down",
}


def error_response(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors[:3]:
        # ("body", "payload", "quantity") → "quantity"
        loc = [str(x) for x in error.get("loc", ()) if x not in ("body", "payload")]
        parts.append(f"{'.'.join(loc) or 'body'}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or MESSAGES[400]


def install(api: NinjaAPI) -> None:
    """Register the handlers on the API (the most specific class wins)."""

    def domain(request: HttpRequest, exc: Any) -> HttpResponse:
        return error_response(exc.status, exc.code, str(exc))

    def validation(request: HttpRequest, exc: Any) -> HttpResponse:
        return error_response(400, "invalid", _validation_message(exc))

    def http(request: HttpRequest, exc: Any) -> HttpResponse:
        status = exc.status_code
        message = MESSAGES.get(status, str(exc))
        response = error_response(status, CODES.get(status, "error"), message)
        wait = getattr(exc, "wait", None)
        if status == 429 and wait is not None:
            response["Retry-After"] = str(max(1, int(wait)))
        return response

    def not_found(request: HttpRequest, exc: Any) -> HttpResponse:
        return error_response(404, "not_found", MESSAGES[404])

    def unexpected(request: HttpRequest, exc: Any) -> HttpResponse:
        logger.error("partner API error on %s", request.path, exc_info=exc)
        return error_response(500, "internal", "internal error; try again later")

    api.add_exception_handler(PartnerApiError, domain)
    api.add_exception_handler(ValidationError, validation)
    api.add_exception_handler(HttpError, http)
    api.add_exception_handler(Http404, not_found)
    api.add_exception_handler(Exception, unexpected)


def json_not_allowed(
    view: Callable[..., HttpResponseBase],
) -> Callable[..., HttpResponseBase]:
    """ninja answers a method a path lacks with an empty HTML 405: make it ours."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        response = view(request, *args, **kwargs)
        if response.status_code == 405 and not response.get(
            "Content-Type", ""
        ).startswith("application/json"):
            allowed = response.get("Allow", "")
            response = error_response(405, "method_not_allowed", MESSAGES[405])
            if allowed:
                response["Allow"] = allowed
        return response

    wrapper.csrf_exempt = True  # type: ignore[attr-defined]
    return wrapper

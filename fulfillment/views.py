"""Supplier callbacks: `/suppliers/callback/<supplier>/` (SPEC §4.3)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from config.lib.clientip import client_ip
from fulfillment.services import supplier_callback_handle


# Suppliers cannot send our CSRF token; the callback is authenticated by its signature.
@csrf_exempt
@require_POST
def supplier_callback(request: HttpRequest, supplier: str) -> HttpResponse:
    result = supplier_callback_handle(
        supplier_name=supplier,
        body=request.body,
        remote_addr=client_ip(request),
    )
    if result.accepted:
        return HttpResponse("success", content_type="text/plain")
    return HttpResponse(
        f"fail: {result.outcome}", status=result.status_code, content_type="text/plain"
    )

"""The refund result notify: a gateway that settles refunds later says how one ended.

`/payments/notify/<gateway>/refund/`, beside the payment notify and guarded like
it: authenticated by the gateway's signature (no CSRF token), every request
recorded (orders/services/refund_results.py), rejected ones counted per source
and a source over its limit answered 429 unrecorded. Only gateways that send
refund notifies (WeChat Pay) are routed; any other name is 404.
"""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from config.lib.clientip import client_ip
from orders import services
from orders.gateways import RefundNotifying, gateway_get


@csrf_exempt
@require_POST
def refund_notify(request: HttpRequest, gateway: str) -> HttpResponse:
    """Record and act on a refund result notify; answer in the gateway's own words."""
    handler = gateway_get(gateway)
    if not isinstance(handler, RefundNotifying):
        raise Http404
    source = client_ip(request)
    if services.notify_source_limited(source=source):
        _status, content_type, body = handler.ack(accepted=False)
        return HttpResponse(body, status=429, content_type=content_type)
    fields = handler.notify_fields(
        body=request.body, headers=request.headers, post=request.POST
    )
    result = services.refund_notify_handle(
        gateway_name=gateway, fields=fields, remote_addr=source, body=request.body
    )
    if not result.accepted:
        services.notify_rejection_note(source=source)
    status, content_type, body = handler.ack(accepted=result.accepted)
    return HttpResponse(body, status=status, content_type=content_type)

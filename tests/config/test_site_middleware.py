"""config/lib/middleware.py: the CSP, NUL and Cache-Control steps in one layer
write what the three middlewares wrote."""

from __future__ import annotations

import pytest
from csp.constants import HEADER
from csp.exceptions import CSPNonceError
from django.http import HttpResponse
from django.test import RequestFactory

from config.lib.middleware import SiteMiddleware


def _answer(response: HttpResponse):
    request = RequestFactory().get("/")
    return request, SiteMiddleware(lambda _request: response)(request)


def test_a_response_without_cache_control_is_marked_exactly_private():
    _request, response = _answer(HttpResponse())

    assert response["Cache-Control"] == "private"
    assert "default-src" in response[HEADER]


def test_a_views_cache_control_keeps_its_directives_and_becomes_private():
    given = HttpResponse()
    given["Cache-Control"] = "max-age=60"

    _request, response = _answer(given)

    assert response["Cache-Control"] == "max-age=60, private"


def test_a_public_response_stays_public():
    given = HttpResponse()
    given["Cache-Control"] = "public, max-age=60"

    _request, response = _answer(given)

    assert response["Cache-Control"] == "public, max-age=60"


def test_a_response_exempted_by_a_csp_decorator_gets_no_policy():
    given = HttpResponse()
    given._csp_exempt = True  # what csp.decorators.csp_exempt leaves

    _request, response = _answer(given)

    assert HEADER not in response


def test_a_nonce_asked_for_after_the_response_is_an_error():
    request, _response = _answer(HttpResponse())

    with pytest.raises(CSPNonceError):
        str(request.csp_nonce)


def test_a_cookie_holding_nul_is_gone_before_the_view_reads_it():
    request = RequestFactory().get("/")
    request.COOKIES = {"sessionid": "abc\x00", "csrftoken": "fine"}
    seen = {}

    def view(request):
        seen.update(request.COOKIES)
        return HttpResponse()

    SiteMiddleware(view)(request)

    assert seen == {"csrftoken": "fine"}

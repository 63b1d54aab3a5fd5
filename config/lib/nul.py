"""NUL bytes in a request: a 404 or a 400, never a 500.

PostgreSQL text cannot hold U+0000 (psycopg2 refuses a query parameter holding
one), so a NUL that reached a lookup or an insert used to be a 500: an order
number in the URL, a SKU in the query string, a field of a payment notify. No
legitimate value of ours contains one, so the request is answered before any
view sees it:

- a cookie holding NUL is dropped, as if the browser had not sent it (the
  session, language and device middlewares then start afresh);
- a path holding NUL names no page: 404;
- a query-string or form field holding NUL is malformed input: 400, the
  friendly page (templates/400.html) or, for a client asking for JSON (the
  order page's scripts), `{"error": {"code": "invalid", ...}}`.

Views exempt from CSRF are machine endpoints (payment notifies, supplier
callbacks; the code import, which owns its request body, is one too). They
answer in their own format and record what they were sent, so they are not cut
short: in the query string and in an urlencoded or JSON body each NUL becomes
U+FFFD before the view reads it (a signed message then fails its signature and
is recorded as rejected, like any forgery). A multipart body, which no gateway
sends, is only looked at: NUL in a field is a 400 (plain text, or the page for
a browser), and the view's own parse of it is left for the view, whose upload
handlers may differ.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import BadRequest, SuspiciousOperation
from django.core.files.uploadhandler import FileUploadHandler, SkipFile
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    JsonResponse,
    QueryDict,
)
from django.http.multipartparser import MultiPartParser, MultiPartParserError
from django.utils.translation import gettext_lazy as _

NUL = "\x00"
REPLACEMENT = "\ufffd"
URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
MSG_NUL = _("请求中含有无效字符。")


def cookies_drop_nul(request: HttpRequest) -> None:
    """Drop the cookies holding NUL, as if the browser had not sent them.

    Before SessionMiddleware and LocaleMiddleware read them
    (config/lib/middleware.py runs this ahead of both).
    """
    cookies = request.COOKIES
    if cookies and any(NUL in key or NUL in value for key, value in cookies.items()):
        request.COOKIES = {
            key: value
            for key, value in cookies.items()
            if NUL not in key and NUL not in value
        }


def nul_view_check(
    request: HttpRequest, view_func: Callable[..., Any]
) -> HttpResponseBase | None:
    """The 404, 400 or cleaning for NUL in the path, query string or form (module docstring).

    A process_view step (config/lib/middleware.py) rather than a request step:
    the language is active, so the 404 and 400 pages speak the visitor's language.
    """
    if NUL in request.path_info:
        raise Http404
    if getattr(view_func, "csrf_exempt", False):
        return _machine_request(request)
    # No query string, nothing to parse (most POSTs).
    bad = bool(request.META.get("QUERY_STRING")) and _has_nul(request.GET)
    if not bad and request.method == "POST" and _is_form(request):
        # CsrfViewMiddleware reads request.POST for this view anyway.
        bad = _has_nul(request.POST)
    if not bad:
        return None
    if _wants_json(request):
        return JsonResponse(
            {"error": {"code": "invalid", "message": str(MSG_NUL)}}, status=400
        )
    raise BadRequest("NUL byte in the query string or form")


def _has_nul(data: QueryDict) -> bool:
    return any(
        NUL in key or any(NUL in value for value in values)
        for key, values in data.lists()
    )


def _is_form(request: HttpRequest) -> bool:
    return request.content_type in (URLENCODED, MULTIPART)


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "") or (
        request.content_type or ""
    ).startswith("application/json")


def _machine_request(request: HttpRequest) -> HttpResponseBase | None:
    """Replace NUL by U+FFFD where a CSRF-exempt view will read it (module docstring)."""
    # No query string, nothing to parse (a gateway's notify is a bare POST).
    if request.META.get("QUERY_STRING") and _has_nul(request.GET):
        clean = QueryDict(mutable=True)
        for key, values in request.GET.lists():
            clean.setlist(
                key.replace(NUL, REPLACEMENT),
                [value.replace(NUL, REPLACEMENT) for value in values],
            )
        clean._mutable = False
        request.GET = clean  # type: ignore[assignment]  # immutable, as Django's
    if request.method != "POST":
        return None
    content_type = request.content_type
    if content_type == MULTIPART:
        return _machine_multipart(request)
    if content_type != URLENCODED and content_type != "application/json":
        return None
    # Reading the body here leaves request.POST unparsed (it is built on first
    # access, from this body). Urlencoded, a NUL is "%00" (a literal "%" is
    # "%25") or a raw NUL byte; in JSON it is the escape \u0000 (raw control
    # characters are invalid JSON already).
    body = request.body
    if content_type == URLENCODED:
        clean_body = body.replace(b"%00", b"%EF%BF%BD").replace(b"\x00", b"%EF%BF%BD")
    else:
        clean_body = body.replace(b"\\u0000", b"\\ufffd")
    if clean_body != body:
        request._body = clean_body
        request._stream = io.BytesIO(clean_body)
    return None


def _machine_multipart(request: HttpRequest) -> HttpResponseBase | None:
    """A 400 for NUL in a multipart field (plain text unless a browser asks for HTML).

    No gateway or supplier posts multipart, but a CSRF-exempt view may take
    uploads (the code import sets its own upload handlers before request.POST
    is first read). So the fields are read from a copy of the body, cached on
    the request (request.POST is still parsed later, by the view's handlers).
    Bodies above DATA_UPLOAD_MAX_MEMORY_SIZE are left to the view: a form field
    holding NUL fails Django's form validation there.
    """
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if not length or (limit is not None and length > limit):
        return None  # unknown length (chunked) or too big to copy: the view's own
    try:
        fields, _files = MultiPartParser(
            request.META,
            io.BytesIO(request.body),
            [_FieldsOnlyUploadHandler(request)],
            request.encoding,
        ).parse()
    except (MultiPartParserError, SuspiciousOperation):
        return None  # the view meets the same error and answers 400
    if not _has_nul(fields):
        return None
    if "text/html" in request.headers.get("Accept", ""):
        raise BadRequest("NUL byte in a form field")  # a browser: the friendly page
    return HttpResponse("fail: invalid request", status=400, content_type="text/plain")


class _FieldsOnlyUploadHandler(FileUploadHandler):
    """Skips every file: only the text fields are looked at."""

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        raise SkipFile

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        return None

    def file_complete(self, file_size: int) -> None:
        return None

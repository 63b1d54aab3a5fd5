"""A POSTed urlencoded form's fields, without building `request.POST`.

Django parses such a body into a QueryDict (a MultiValueDict filled one
`appendlist` at a time: ~225 Python calls for a gateway notify's six fields).
A machine endpoint that only reads each field's value (a payment notify) needs
none of that: `form_fields` parses the same body with the same
`urllib.parse.parse_qsl` call and the same rules as `HttpRequest.POST`, and
gives what `request.POST.get(key)` would give for each key, in the same order.

Django's rules kept (django/http/request.py `_load_post_and_files`, QueryDict):
- the body is `request.body`: DATA_UPLOAD_MAX_MEMORY_SIZE applies (a 400);
- at most DATA_UPLOAD_MAX_NUMBER_FIELDS fields (`TooManyFieldsSent`, a 400);
- UTF-8, a body that is not valid UTF-8 read as ISO-8859-1, and percent-escapes
  that are not valid UTF-8 replaced by U+FFFD, as Django reads them;
- a charset other than UTF-8 on the content type is Django's BadRequest (400);
- blank values kept; a repeated key gives its last value (`QueryDict.get`).
Anything else (another content type, a body already streamed, `request.POST`
already built, a method other than POST) is `request.POST` itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl

from django.conf import settings
from django.core.exceptions import TooManyFieldsSent
from django.http import HttpRequest

URLENCODED = "application/x-www-form-urlencoded"


def form_fields(request: HttpRequest) -> Mapping[str, str]:
    """The POSTed form's fields: each key once (first seen first), its last value."""
    encoding = request.encoding
    if (
        request.method != "POST"
        or request.content_type != URLENCODED
        or (encoding is not None and encoding.lower() != "utf-8")
        or hasattr(request, "_post")
        or (request._read_started and not hasattr(request, "_body"))  # type: ignore[attr-defined]
    ):
        return request.POST  # Django's own parse (and errors)
    body = request.body  # raises RequestDataTooBig, or after a streamed read
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:  # as QueryDict: misbehaving clients
        text = body.decode("iso-8859-1")
    try:
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            encoding="utf-8",
            max_num_fields=settings.DATA_UPLOAD_MAX_NUMBER_FIELDS,
        )
    except ValueError as exc:  # as QueryDict: only max_num_fields raises it
        raise TooManyFieldsSent(
            "The number of GET/POST parameters exceeded "
            "settings.DATA_UPLOAD_MAX_NUMBER_FIELDS."
        ) from exc
    return dict(pairs)

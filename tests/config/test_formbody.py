"""config/lib/formbody.py: a urlencoded form read as request.POST reads it."""

from __future__ import annotations

import pytest
from django.core.exceptions import BadRequest, RequestDataTooBig, TooManyFieldsSent
from django.http import QueryDict
from django.test import RequestFactory

from config.lib.formbody import URLENCODED, form_fields

BODIES = [
    b"out_trade_no=KQ1&trade_no=T1&total_amount=30.00&sign=abc",
    b"a=1&b=&c&a=2",  # a repeated key (its last value), blank values kept
    b"name=%E4%BD%A0%E5%A5%BD+x&plus=a%2Bb&semi=a;b",  # UTF-8, '+', ';'
    b"bad=%FF%FE&ok=1",  # escapes that are not UTF-8: U+FFFD
    b"raw=\xe9t\xe9",  # a body that is not UTF-8: read as ISO-8859-1
    b"",
    b"&&=&k=v&=x",
]


def _request(body: bytes, content_type: str = URLENCODED):  # type: ignore[no-untyped-def]
    return RequestFactory().generic("POST", "/n/", body, content_type=content_type)


@pytest.mark.parametrize("body", BODIES)
def test_form_fields_are_what_request_post_gives_each_key(body):
    django_post = _request(body).POST

    fields = form_fields(_request(body))

    assert list(fields) == list(django_post)
    assert {key: fields[key] for key in fields} == {
        key: django_post.get(key) for key in django_post
    }


def test_form_fields_leave_request_post_unbuilt():
    request = _request(b"a=1")

    form_fields(request)

    assert not hasattr(request, "_post")
    assert request.POST.get("a") == "1"  # still there for anyone who asks


def test_too_many_form_fields_are_refused_as_django_refuses_them(settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 2

    with pytest.raises(TooManyFieldsSent):
        form_fields(_request(b"a=1&b=2&c=3"))


def test_a_form_body_over_the_size_limit_is_refused(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10

    with pytest.raises(RequestDataTooBig):
        form_fields(_request(b"a=" + b"x" * 20))


def test_a_form_in_another_charset_is_djangos_bad_request():
    with pytest.raises(BadRequest):
        form_fields(_request(b"a=1", content_type=URLENCODED + "; charset=latin-1"))


def test_other_bodies_are_request_post_itself():
    request = _request(b"a=1", content_type="application/json")

    fields = form_fields(request)

    assert isinstance(fields, QueryDict)
    assert dict(fields) == {}

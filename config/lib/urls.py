"""reverse() of a one-argument URL without resolving it every time.

The checkout names three URLs per order (the gateway's notify URL, the order page
it comes back to, the sandbox's pay page), each with one plain argument (a gateway
name, an order number, a trade token). reverse() walks the URL configuration's
namespaces on every call (~90 Python calls); `reverse_arg` does it once per URL
name, URL configuration and script prefix, then puts the argument in place.
"""

from __future__ import annotations

import re
from typing import Any

from django.urls import NoReverseMatch, get_resolver, get_script_prefix, get_urlconf
from django.urls import reverse as django_reverse

# An argument reverse() puts in a path segment as it is: no quoting, no slash.
PLAIN = re.compile(r"[A-Za-z0-9_-]+")
# Stands for the argument while the template is made; plain, and unlike any path.
_MARK = "kqARGmark_7f3"
# Templates kept per process: a handful of names per URL configuration.
_MAX_TEMPLATES = 64

# (resolver, script prefix, name) -> (before, after) the argument, or None when the
# route does not take any plain argument (reverse() then answers every call).
_templates: dict[tuple[Any, str, str], tuple[str, str] | None] = {}


def reverse_arg(viewname: str, arg: str) -> str:
    """`reverse(viewname, args=[arg])`, the same string, for a route whose one
    argument is a path segment taking any plain value (`str`, `slug`, `path`).

    Keyed by the resolver (a new one after `clear_url_caches()` or another
    ROOT_URLCONF: never a stale template) and the script prefix. Not by the
    language: no URL of this project is translated (no `i18n_patterns`). An
    argument that is not plain goes through reverse(), as does every call for a
    route whose converter refuses a plain value (an `int`, a `uuid`).
    """
    return reverse_args((viewname, arg))[0]


def reverse_args(*named: tuple[str, str]) -> list[str]:
    """`reverse_arg(viewname, arg)` of each (viewname, arg) pair, in order.

    The resolver and the script prefix are the thread's (two thread-local
    look-ups, ~20 Python calls): read once for all the pairs of one request.
    """
    resolver = get_resolver(get_urlconf())
    prefix = get_script_prefix()
    urls = []
    for viewname, arg in named:
        if not PLAIN.fullmatch(arg):
            urls.append(django_reverse(viewname, args=[arg]))
            continue
        key = (resolver, prefix, viewname)
        try:
            parts = _templates[key]
        except KeyError:
            parts = _template(viewname)
            if len(_templates) >= _MAX_TEMPLATES:
                _templates.clear()
            _templates[key] = parts
        if parts is None:
            urls.append(django_reverse(viewname, args=[arg]))
        else:
            urls.append(parts[0] + arg + parts[1])
    return urls


def _template(viewname: str) -> tuple[str, str] | None:
    """The URL around its argument, or None when a plain argument may be refused.

    Two unlike arguments (a long mixed one and a single digit) must both be taken
    and land at the same place: a converter with its own pattern (digits, a
    length, a case) fails one of them.
    """
    try:
        url = django_reverse(viewname, args=[_MARK])
        digit = django_reverse(viewname, args=["0"])
    except NoReverseMatch:
        return None
    if url.count(_MARK) != 1:
        return None
    before, _, after = url.partition(_MARK)
    return (before, after) if digit == before + "0" + after else None

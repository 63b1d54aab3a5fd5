"""The startup heap kept out of Python's cyclic garbage collector.

A web worker holds a few hundred thousand long-lived objects (Django, the apps,
their models, the URLconf, every view module) and creates and drops thousands
per request. Every full (generation 2) collection walks all of them, though
none will ever be garbage: `profile_checkout.py` measured one at ~0.1 s,
about 0.5 ms per paid order spread over the orders between two. `gc.freeze()`
moves everything alive into a permanent generation that collections skip; the
collector still runs and still frees cycles made afterwards (CPython's
documentation recommends it for exactly this, and Instagram's post-fork
freeze is the well-known use). Objects frozen are never freed, which is what
the startup heap is anyway.
"""

from __future__ import annotations

import gc


def heap_freeze() -> int:
    """Load the URLconf (so every view module is imported), collect once, then
    freeze what is alive. Called once per process when its WSGI application
    is built (config/wsgi.py); returns how many objects were frozen.
    Idempotent: yes (a second call freezes what appeared since).
    """
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 (imports the URLconf's view modules)
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()

"""Django's MessageMiddleware, building the message storage only when it is used.

Django builds the storage for every request (the fallback storage builds a
cookie storage, with its own signer, and a session storage); most requests of a
rush never touch it: the sold-out answer, notifies, JSON endpoints. Here
`request._messages` is a lazy object that builds the same storage on first use
(adding a message, reading them, `get_messages`); the storages read their data
lazily in any case, so nothing is read at a different moment. A storage never
built holds nothing added and nothing read, so Django's `update()` would have
done nothing for it: the response is left alone.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.messages.storage import default_storage
from django.contrib.messages.storage.base import BaseStorage
from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject, empty


class _LazyStorage(SimpleLazyObject):
    def __init__(self, func: Callable[[], BaseStorage]) -> None:
        # SimpleLazyObject's two attributes, written as its __init__ writes them
        # (into the instance's __dict__) without its __setattr__ and
        # __getattribute__ hooks: ~8 Python calls per request, here 2.
        object.__setattr__(self, "_setupfunc", func)
        object.__setattr__(self, "_wrapped", empty)


class LazyMessageMiddleware(MessageMiddleware):
    def process_request(self, request: HttpRequest) -> None:
        request._messages = _LazyStorage(partial(default_storage, request))  # type: ignore[attr-defined]

    def process_response(
        self, request: HttpRequest, response: HttpResponse
    ) -> HttpResponse:
        storage = getattr(request, "_messages", None)
        if type(storage) is _LazyStorage and storage._wrapped is empty:  # type: ignore[attr-defined]
            return response  # never used: nothing to store
        return super().process_response(request, response)

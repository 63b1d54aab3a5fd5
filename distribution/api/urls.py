"""URL patterns of the partner API, mounted at /api/v1/ by config/urls.py."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver

from distribution.api.errors import json_not_allowed
from distribution.api.views import api

app_name = "partner-api"
_patterns, _app, _namespace = api.urls
for _pattern in _patterns:
    if isinstance(_pattern, URLPattern):
        _pattern.callback = json_not_allowed(_pattern.callback)

urlpatterns: list[URLPattern | URLResolver] = list(_patterns)

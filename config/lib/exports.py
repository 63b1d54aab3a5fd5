"""Admin exports (django-import-export) that are safe to open in a spreadsheet.

Formula injection: a cell whose text starts with "=", "+", "-", "@", a tab or a
carriage return is a formula to Excel and LibreOffice (`=HYPERLINK(...)` in a
batch note, run by whoever opens the report). Such text is written with a
leading apostrophe, the spreadsheet's own "this is text" mark, as OWASP
advises. Numbers stay numbers: typed values in XLSX are not touched, and a
CSV cell that is a plain number ("-12.50") is not text to escape.

import-export's own IMPORT_EXPORT_ESCAPE_FORMULAE_ON_EXPORT stays off (see
config/settings.py): it only strips a leading "=" and turns every XLSX cell
into text (numbers, dates; an empty cell becomes "None").

Filters: the export builds the admin's change list from the query string, and
an unknown or malformed filter (`?foo=bar`, `?created_at__gte=notadate`) is a
400, as Django's own change list refuses it, not a 500.
"""

from __future__ import annotations

import re
from typing import Any

import tablib
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import BadRequest
from django.db.models import QuerySet
from django.http import HttpRequest
from import_export.admin import ExportMixin
from import_export.formats import base_formats

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")


def escape_formula(value: Any) -> Any:
    """`value`, with a leading apostrophe if it is text a spreadsheet would run."""
    if (
        isinstance(value, str)
        and value.startswith(FORMULA_PREFIXES)
        and not _PLAIN_NUMBER.fullmatch(value)
    ):
        return "'" + value
    return value


class _EscapeFormulae:
    def export_data(self, dataset: tablib.Dataset, **kwargs: Any) -> Any:
        escaped = tablib.Dataset(headers=dataset.headers, title=dataset.title)
        for row in dataset:
            escaped.append([escape_formula(cell) for cell in row])
        return super().export_data(escaped, **kwargs)  # type: ignore[misc]


class CSV(_EscapeFormulae, base_formats.CSV):  # type: ignore[misc]
    pass


class XLSX(_EscapeFormulae, base_formats.XLSX):  # type: ignore[misc]
    pass


class SafeExportMixin(ExportMixin):  # type: ignore[misc]
    """import-export's ExportMixin with escaped cells and bad filters answered 400."""

    export_formats = (CSV, XLSX)

    def get_export_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        try:
            return super().get_export_queryset(request)  # type: ignore[no-any-return]
        except IncorrectLookupParameters as exc:
            raise BadRequest("unknown or malformed export filter") from exc

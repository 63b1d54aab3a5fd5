"""The partner API at /api/v1/ (SPEC §4.4), on django-ninja: typed schemas and
the OpenAPI document from the library; signatures, balances and orders are
distribution's own (distribution/partners/)."""

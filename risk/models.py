"""Models arrive with the issue that builds this app."""

from __future__ import annotations

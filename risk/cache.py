"""The active rules and lists, kept in each process and keyed by a version token.

Every checkout needs them and operators change them a few times a day, so (as
catalog/cache.py does for the catalog) the shared cache holds one *version*
token, replaced whenever a RiskRule or RiskListEntry is saved or deleted (the
signals below, again after the transaction commits), and each process keeps the
snapshot it built for the current token in a module variable: one cache GET per
checkout tells whether it is still current. Not the `local` cache alias: that
pickles, and unpickling a long block list on every checkout costs more than the
rules themselves.

`QuerySet.update()` and raw SQL on the risk tables bypass the signals: call
`risk_rules_changed()` after them.

A process trusts the token it read for VERSION_TRUST_SECONDS (one cache GET a
second, not two per paid order): another process's change takes effect here
within that second; this process's own change at once.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from risk.matching import Lists, lists_build
from risk.models import RiskListEntry, RiskRule
from risk.rules import STAGE_BOTH, RuleSpec
from risk.types import Action, Stage

logger = logging.getLogger(__name__)

VERSION_KEY = "risk:version"
# How long a process trusts the token it read (see the module docstring).
VERSION_TRUST_SECONDS = 1.0


@dataclass(frozen=True)
class RiskSnapshot:
    version: str
    by_stage: dict[Stage, tuple[RuleSpec, ...]]  # active rules, in priority order
    lists: Lists


_lock = threading.Lock()
_current: list[
    RiskSnapshot
] = []  # at most one: the snapshot of the newest version seen


_clock = time.monotonic
# (token, when it was read): the token this process read last, trusted a moment.
_seen: list[tuple[str, float]] = []


def _version() -> str:
    """The current version token, read at most once per VERSION_TRUST_SECONDS."""
    now = _clock()
    seen = _seen[0] if _seen else None
    if seen is not None and now - seen[1] < VERSION_TRUST_SECONDS:
        return seen[0]
    version = _version_read()
    if not version.startswith("nocache-"):
        _seen[:] = [(version, now)]
    return version


def risk_version_forget() -> None:
    """Forget the token this process read (the shared cache was emptied)."""
    _seen.clear()


def _version_read() -> str:
    """The current version token; a fresh one per call when the cache is down
    (every checkout then reads the rules from the database: slower, never stale)."""
    try:
        version = cache.get(VERSION_KEY)
        if version is None:
            cache.add(VERSION_KEY, secrets.token_hex(8), None)
            version = cache.get(VERSION_KEY)
    except Exception:
        logger.warning("risk rules version unavailable: cache unreachable")
        return "nocache-" + secrets.token_hex(8)
    return str(version or "nocache-" + secrets.token_hex(8))


def risk_rules_changed() -> None:
    """Retire every process's snapshot (now, and again after commit)."""

    def bump() -> None:
        risk_version_forget()  # this process sees its own change at once
        try:
            cache.set(VERSION_KEY, secrets.token_hex(8), None)
        except Exception:
            logger.warning("risk rules version not bumped: cache unreachable")

    bump()
    transaction.on_commit(bump)


def _changed(sender: type, **kwargs: Any) -> None:
    if kwargs.get("raw"):  # loaddata
        return
    risk_rules_changed()


for _model in (RiskRule, RiskListEntry):
    post_save.connect(_changed, sender=_model, dispatch_uid=f"risk-cache-{_model}")
    post_delete.connect(
        _changed, sender=_model, dispatch_uid=f"risk-cache-del-{_model}"
    )


def rule_spec(rule: RiskRule) -> RuleSpec:
    threshold = rule.threshold
    return RuleSpec(
        id=rule.pk,
        name=rule.name,
        kind=rule.kind,
        action=Action(rule.action),
        stage=rule.stage,
        priority=rule.priority,
        scope=rule.scope,
        platform_id=rule.platform_id,
        sku_id=rule.sku_id,
        subject=rule.subject,
        window_seconds=rule.window_seconds,
        threshold=Decimal(threshold) if threshold is not None else None,
        since=rule.counting_since.timestamp(),
    )


def _build(version: str) -> RiskSnapshot:
    specs = [
        rule_spec(r)
        for r in RiskRule.objects.filter(active=True).order_by("priority", "id")
    ]
    by_stage = {
        stage: tuple(s for s in specs if s.stage in (stage, STAGE_BOTH))
        for stage in Stage
    }
    rows = RiskListEntry.objects.filter(active=True).values_list(
        "list_kind", "subject", "value"
    )
    return RiskSnapshot(version=version, by_stage=by_stage, lists=lists_build(rows))


def risk_snapshot() -> RiskSnapshot:
    """The active rules and lists of the current version (built on a miss)."""
    version = _version()
    if _current and _current[0].version == version:
        return _current[0]
    snapshot = _build(version)
    with _lock:
        _current[:] = [snapshot]
    return snapshot

"""A process trusts the risk rules' version token for a second: one cache GET a
second, not two per paid order. Its own changes apply at once; another
process's within that second."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from risk import cache as risk_cache
from risk.cache import VERSION_KEY, VERSION_TRUST_SECONDS, risk_snapshot
from tests.factories.risk import RiskRuleFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(risk_cache, "_clock", lambda: now[0])
    return now


def test_a_change_here_applies_at_once(clock):
    before = risk_snapshot()

    RiskRuleFactory(name="新规则")

    after = risk_snapshot()
    assert before.by_stage != after.by_stage
    assert [r.name for r in after.by_stage["checkout"]] == ["新规则"]


def test_another_process_change_applies_within_the_trusted_second(clock):
    first = risk_snapshot()
    cache.set(VERSION_KEY, "set-by-another-process", None)

    clock[0] += VERSION_TRUST_SECONDS / 2
    trusted = risk_snapshot()
    clock[0] += VERSION_TRUST_SECONDS / 2
    read_again = risk_snapshot()

    assert trusted.version == first.version
    assert read_again.version == "set-by-another-process"


def test_the_token_is_read_once_per_second_whatever_the_checkouts(clock, monkeypatch):
    reads = []
    real = risk_cache._version_read
    monkeypatch.setattr(risk_cache, "_version_read", lambda: reads.append(1) or real())

    for _ in range(50):
        risk_snapshot()
        clock[0] += 0.01

    assert len(reads) == 1

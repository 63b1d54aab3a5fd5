"""Admin forms for risk rules and list entries: each kind's parameters checked at their field."""

from __future__ import annotations

import ipaddress
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from risk.matching import normalize_domain, normalize_recharge_account
from risk.models import RiskListEntry, RiskRule, Subject
from risk.rules import COUNTED_SUBJECTS

K = RiskRule.Kind

ERR_REQUIRED = _("此类型的规则必须填写这一项。")
ERR_SUBJECT = _("此类型的规则只能按以下对象计数：%(subjects)s。")
ERR_WHOLE = _("笔数、数量类阈值必须是整数。")
ERR_NEGATIVE = _("阈值不能为负数。")
ERR_PLATFORM = _("范围为“平台”时必须选择平台。")
ERR_SKU = _("范围为“规格”时必须选择规格。")
ERR_ALLOW_ONLY = _("白名单规则的处置必须是“放行”。")
ERR_NOT_ALLOW = _("只有白名单规则可以“放行”；其他规则请选择验证码、人工审核或拦截。")
ERR_IP = _("请输入 IP 地址或网段（CIDR），例如 203.0.113.7 或 203.0.113.0/24。")
ERR_DOMAIN = _("请输入域名，例如 mailinator.com（不含 @）。")
ERR_ACCOUNT = _("请输入账号的用户 ID（数字）。")
ERR_EMPTY = _("请输入值。")

# Kinds whose threshold counts orders, units or accounts (not yuan).
_WHOLE_THRESHOLD = {
    K.VELOCITY_ORDERS,
    K.SKU_LIMIT,
    K.ORDER_QUANTITY,
    K.DISTINCT_RECHARGE_ACCOUNTS,
    K.UNPAID_ORDERS,
}
# kind -> (needs a window, needs a threshold)
_NEEDS: dict[str, tuple[bool, bool]] = {
    K.VELOCITY_ORDERS: (True, True),
    K.VELOCITY_AMOUNT: (True, True),
    K.SKU_LIMIT: (False, True),  # no window: a lifetime limit
    K.ORDER_QUANTITY: (False, True),
    K.NEW_ACCOUNT: (True, True),  # window: the account age below which it applies
    K.DISTINCT_RECHARGE_ACCOUNTS: (True, True),
    K.UNPAID_ORDERS: (False, True),
    K.BLOCKLIST: (False, False),
    K.ALLOWLIST: (False, False),
    K.DISPOSABLE_EMAIL: (False, False),
}
_LISTED = {K.BLOCKLIST, K.ALLOWLIST}


class RiskRuleForm(forms.ModelForm):
    class Meta:
        model = RiskRule
        fields = [
            "name",
            "kind",
            "stage",
            "action",
            "priority",
            "active",
            "scope",
            "platform",
            "sku",
            "subject",
            "window_seconds",
            "threshold",
            "note",
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if "kind" not in self.fields:  # the changelist's priority/active form
            return data
        kind = data.get("kind")
        if not kind:
            return data
        self._clean_parameters(kind, data)
        self._clean_scope(data)
        self._clean_action(kind, data)
        return data

    def _clean_parameters(self, kind: str, data: dict[str, Any]) -> None:
        needs_window, needs_threshold = _NEEDS[kind]
        if needs_window and not data.get("window_seconds"):
            self.add_error("window_seconds", ERR_REQUIRED)
        threshold = data.get("threshold")
        if needs_threshold and threshold is None:
            self.add_error("threshold", ERR_REQUIRED)
        elif threshold is not None and threshold < 0:
            self.add_error("threshold", ERR_NEGATIVE)
        elif (
            threshold is not None
            and kind in _WHOLE_THRESHOLD
            and threshold != int(threshold)
        ):
            self.add_error("threshold", ERR_WHOLE)
        subject = data.get("subject") or ""
        allowed = COUNTED_SUBJECTS.get(kind)
        if allowed is not None and subject not in allowed:
            names = "、".join(
                str(label) for value, label in Subject.choices if value in allowed
            )
            self.add_error("subject", ERR_SUBJECT % {"subjects": names})
        elif kind in _LISTED and not subject:
            self.add_error("subject", ERR_REQUIRED)
        elif kind == K.SKU_LIMIT:
            data["subject"] = Subject.ACCOUNT  # always per account
        elif allowed is None and kind not in _LISTED:
            data["subject"] = ""  # no subject: nothing to count per

    def _clean_scope(self, data: dict[str, Any]) -> None:
        scope = data.get("scope")
        if scope == RiskRule.Scope.PLATFORM:
            if data.get("platform") is None:
                self.add_error("platform", ERR_PLATFORM)
            data["sku"] = None
        elif scope == RiskRule.Scope.SKU:
            if data.get("sku") is None:
                self.add_error("sku", ERR_SKU)
            data["platform"] = None
        else:
            data["platform"] = data["sku"] = None

    def _clean_action(self, kind: str, data: dict[str, Any]) -> None:
        action = data.get("action")
        if not action:
            return
        if kind == K.ALLOWLIST and action != RiskRule.ActionChoice.ALLOW:
            self.add_error("action", ERR_ALLOW_ONLY)
        elif kind != K.ALLOWLIST and action == RiskRule.ActionChoice.ALLOW:
            self.add_error("action", ERR_NOT_ALLOW)


def normalize_list_value(subject: str, raw: str) -> str:
    """The value as lists store and match it. Raises: forms.ValidationError."""
    value = raw.strip()
    if not value:
        raise forms.ValidationError(ERR_EMPTY)
    if subject == Subject.IP:
        try:
            net = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise forms.ValidationError(ERR_IP) from None
        if net.num_addresses == 1:
            return str(net.network_address)
        return str(net)
    if subject == Subject.EMAIL_DOMAIN:
        domain = normalize_domain(value.rpartition("@")[2])
        if not domain or "." not in domain or any(c in domain for c in " /\\@:"):
            raise forms.ValidationError(ERR_DOMAIN)
        return domain
    if subject == Subject.ACCOUNT:
        if not value.isascii() or not value.isdigit():
            raise forms.ValidationError(ERR_ACCOUNT)
        return str(int(value))
    if subject == Subject.RECHARGE_ACCOUNT:
        return normalize_recharge_account(value)
    return value


class RiskListEntryForm(forms.ModelForm):
    class Meta:
        model = RiskListEntry
        fields = ["list_kind", "subject", "value", "note", "active"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        subject = data.get("subject")
        if subject and "value" in data:
            try:
                data["value"] = normalize_list_value(subject, data["value"])
            except forms.ValidationError as exc:
                self.add_error("value", exc)
        return data

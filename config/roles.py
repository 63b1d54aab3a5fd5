"""Staff roles: the Operators group holds exactly what operators need.

Revealing or exporting a plaintext code is a separate permission, held by the
"Code custodians" group, so it can be granted to few people and audited.

The top-up and refund admins are read-only whoever asks; there `change_topup`
means "may retry, fail over or refund a top-up", `change_refund` "may send a
failed refund again" and `change_order` "may approve or reject an order held
for risk review" (the admin actions check them; no field is ever editable).
`confirm_paid` (an order's own permission) "may mark an order paid on a trade
number the gateway confirms".
"""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission

OPERATORS = "Operators"
CODE_CUSTODIANS = "Code custodians"

OPERATOR_PERMISSIONS = {
    "catalog": [
        "add_platform",
        "change_platform",
        "view_platform",
        "add_product",
        "change_product",
        "view_product",
        "add_sku",
        "change_sku",
        "view_sku",
        "view_sku_stock",
        "add_validityrule",
        "change_validityrule",
        "view_validityrule",
        "add_bundleitem",
        "change_bundleitem",
        "delete_bundleitem",
        "view_bundleitem",
    ],
    "fulfillment": [
        "add_codebatch",
        "view_codebatch",
        "view_cardcode",
        "view_supplier",
        "add_supplier",
        "change_supplier",
        "view_supplierproduct",
        "add_supplierproduct",
        "change_supplierproduct",
        "view_topup",
        "change_topup",
        "view_supplierattempt",
        "view_topupevent",
        "view_suppliercallback",
        "view_cardrestock",
        "change_cardrestock",
    ],
    "orders": [
        "view_order",
        "change_order",  # approve or reject an order held for review (orders/review_admin.py)
        # Mark a pending or cancelled order paid on a gateway trade number
        # (orders/aftersales_admin.py); its own permission, so it can be withheld.
        "confirm_paid",
        "view_orderline",
        "view_orderevent",
        "view_payment",
        "view_paymentnotify",
        "view_refund",
        "change_refund",
        "view_orderemail",
        # Operator alerts and their digest emails (orders/alerts_admin.py), read-only.
        "view_operatoralert",
        "view_operatoralertemail",
        # After-sales (orders/problems_admin.py): answer a shopper's problem report.
        "view_problemreport",
        "change_problemreport",
        "view_returnedcode",
        "view_batchflag",
    ],
}
CUSTODIAN_PERMISSIONS = {
    "fulfillment": ["reveal_cardcode", "export_cardcode", "view_codeaccesslog"]
}


def _sync(name: str, wanted: dict[str, list[str]]) -> Group:
    group, _ = Group.objects.get_or_create(name=name)
    perms = []
    for app_label, codenames in wanted.items():
        found = list(
            Permission.objects.filter(
                content_type__app_label=app_label, codename__in=codenames
            )
        )
        missing = set(codenames) - {p.codename for p in found}
        if missing:
            raise RuntimeError(
                f"permissions not found (run migrate first): {sorted(missing)}"
            )
        perms.extend(found)
    group.permissions.set(perms)
    return group


def staff_groups_sync() -> tuple[Group, Group]:
    """Create or reset the staff groups to exactly their permissions. Idempotent."""
    return _sync(OPERATORS, OPERATOR_PERMISSIONS), _sync(
        CODE_CUSTODIANS, CUSTODIAN_PERMISSIONS
    )

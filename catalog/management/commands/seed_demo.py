"""seed_demo: idempotent demo data — platforms, products, SKUs, codes, a shopper and an operator."""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Any

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from catalog.models import Platform, Product, Sku, ValidityRule
from config.roles import staff_groups_sync
from fulfillment.models import CodeBatch
from fulfillment.services import card_codes_import

SHOPPER_EMAIL = "shopper@kaquan.test"
OPERATOR_EMAIL = "operator@kaquan.test"
ADMIN_EMAIL = "admin@kaquan.test"
DEMO_PASSWORD = "kaquan-demo-2026"  # noqa: S105 (demo only; refused with DEBUG off)

VALIDITY = {
    "month": ("31 天", 31),
    "quarter": ("92 天", 92),
    "year": ("366 天", 366),
}
PERIODS = [
    ("MONTH", "月卡", "month"),
    ("QUARTER", "季卡", "quarter"),
    ("YEAR", "年卡", "year"),
]

# platform slug, name, colour, product slug, product name, SKU prefix, prices (month, quarter, year)
CATALOG = [
    (
        "tencent-video",
        "腾讯视频",
        "#ff7a00",
        "tencent-video-vip",
        "腾讯视频 VIP 会员",
        "TX-VIP",
        ("25.00", "68.00", "238.00"),
    ),
    (
        "iqiyi",
        "爱奇艺",
        "#00be06",
        "iqiyi-gold",
        "爱奇艺 黄金 VIP 会员",
        "IQ-GOLD",
        ("25.00", "68.00", "238.00"),
    ),
    (
        "youku",
        "优酷",
        "#1f8fff",
        "youku-vip",
        "优酷 VIP 会员",
        "YK-VIP",
        ("20.00", "58.00", "198.00"),
    ),
    (
        "netease-music",
        "网易云音乐",
        "#e60026",
        "netease-vinyl",
        "网易云音乐 黑胶 VIP",
        "NE-VINYL",
        ("15.00", "45.00", "158.00"),
    ),
]
# Codes per SKU: plenty, except one low-stock and one sold-out SKU to show the states.
CODES_PER_SKU = 30
SPECIAL_STOCK = {"YK-VIP-YEAR": 4, "NE-VINYL-YEAR": 0}

USAGE = (
    "1. 卡密仅限中国大陆账号使用，一个卡密只能兑换一次。\n"
    "2. 兑换后不支持退款，请确认账号后再兑换。\n"
    "3. 会员权益以平台官方说明为准。"
)
REDEEM = "打开{platform} App → 我的 → 会员中心 → 兑换码，输入卡密后点击兑换。"


class Command(BaseCommand):
    help = "Create idempotent demo data and print the demo logins."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--force", action="store_true", help="allow with DEBUG off")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG and not options["force"]:
            raise CommandError(
                "seed_demo creates known passwords; refusing with DEBUG off"
            )
        operators, _custodians = staff_groups_sync()
        with transaction.atomic():
            rules = self._validity_rules()
            skus = self._catalog(rules)
        for sku in skus:
            self._codes(sku)
        shopper = self._user(SHOPPER_EMAIL)
        operator = self._user(OPERATOR_EMAIL, staff=True)
        operator.groups.add(operators)
        self._user(ADMIN_EMAIL, staff=True, superuser=True)
        self.stdout.write(self.style.SUCCESS("Demo data ready."))
        self.stdout.write(f"  shopper : {shopper.email} / {DEMO_PASSWORD}")
        self.stdout.write(
            f"  operator: {operator.email} / {DEMO_PASSWORD}  (staff, Operators group)"
        )
        self.stdout.write(f"  admin   : {ADMIN_EMAIL} / {DEMO_PASSWORD}  (superuser)")

    def _validity_rules(self) -> dict[str, ValidityRule]:
        rules = {}
        for key, (label, days) in VALIDITY.items():
            rules[key], _ = ValidityRule.objects.update_or_create(
                name=f"会员 {label}，售出后 180 天内兑换",
                defaults={"duration_days": days, "redeem_within_days": 180},
            )
        return rules

    def _catalog(self, rules: dict[str, ValidityRule]) -> list[Sku]:
        skus = []
        for order, (p_slug, p_name, colour, slug, name, prefix, prices) in enumerate(
            CATALOG
        ):
            platform, _ = Platform.objects.update_or_create(
                slug=p_slug,
                defaults={
                    "name": p_name,
                    "brand_color": colour,
                    "sort_order": order,
                    "account_rule": Platform.AccountRule.PHONE,
                },
            )
            product, _ = Product.objects.update_or_create(
                slug=slug,
                defaults={
                    "platform": platform,
                    "name": name,
                    "sort_order": order,
                    "summary": f"{p_name}官方会员卡密，自动发货，即买即用",
                    "usage_rules": USAGE,
                    "redeem_instructions": REDEEM.format(platform=p_name),
                },
            )
            for position, ((suffix, label, period), price) in enumerate(
                zip(PERIODS, prices, strict=True)
            ):
                sku, _ = Sku.objects.update_or_create(
                    code=f"{prefix}-{suffix}",
                    defaults={
                        "product": product,
                        "name": f"{label}",
                        "sort_order": position,
                        "face_value": Decimal(price),
                        "price": Decimal(price) * Decimal("0.9"),
                        "validity_rule": rules[period],
                        "low_stock_threshold": 5,
                        "delivery": Sku.Delivery.CARD_CODE,
                    },
                )
                skus.append(sku)
        return skus

    def _codes(self, sku: Sku) -> None:
        if CodeBatch.objects.filter(sku=sku).exists():
            return
        count = SPECIAL_STOCK.get(sku.code, CODES_PER_SKU)
        if count == 0:
            return
        codes = "\n".join(
            f"{sku.code.split('-')[0]}{secrets.token_hex(6).upper()}"
            for _ in range(count)
        )
        card_codes_import(
            sku=sku,
            content=codes.encode(),
            file_name="demo.txt",
            actor=None,
            source="seed_demo",
            cost_price=sku.price * Decimal("0.8"),
            note="demo codes",
        )

    def _user(self, email: str, *, staff: bool = False, superuser: bool = False) -> Any:
        User = get_user_model()
        user = User.objects.filter(email=email).first()
        if user is None:
            user = User(username=email.split("@")[0], email=email)
            user.set_password(DEMO_PASSWORD)
        user.is_staff = staff
        user.is_superuser = superuser
        user.save()
        EmailAddress.objects.update_or_create(
            user=user, email=email, defaults={"verified": True, "primary": True}
        )
        return user

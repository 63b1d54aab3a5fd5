"""seed_demo: idempotent demo data across the apps — platforms, products, SKUs, codes, users and the supplier.

Besides the card-code catalog it seeds direct top-ups (直充), one bundle, and the
bundled supplier simulator registered as supplier `demo-sim` with the demo's
top-up SKUs (and one card SKU, restocked from it) mapped to its products.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from catalog.models import BundleItem, Platform, Product, Sku, ValidityRule
from config.lib.errors import DomainError
from config.roles import staff_groups_sync
from fulfillment.models import CodeBatch
from fulfillment.services import card_codes_import, supplier_map, supplier_register
from fulfillment.simulator.server import DEFAULT_APP_KEY, DEFAULT_SECRET

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
# platform.account_rule validates the recharge account of a top-up; card-code SKUs
# ignore it. 腾讯视频 tops up QQ numbers, the others phone numbers.
ACCOUNT_RULES = {"tencent-video": Platform.AccountRule.QQ}


@dataclass(frozen=True)
class TopUp:
    """A direct top-up SKU, in a product of its own, and the supplier product behind it."""

    platform: str  # platform slug
    product_slug: str
    product_name: str
    code: str
    face_value: str
    price: str  # a little above the supplier's cost
    supplier_product: str
    cost: str


# Their own products rather than extra SKUs of the card products: a top-up asks
# for an account and needs no redeeming, so its page reads differently.
TOPUPS = [
    TopUp(
        "tencent-video",
        "tencent-video-vip-direct",
        "腾讯视频 VIP 直充",
        "TX-VIP-MONTH-DIRECT",
        "30.00",
        "26.50",
        "P-TX-VIP-MONTH",
        "24.00",
    ),
    TopUp(
        "iqiyi",
        "iqiyi-gold-direct",
        "爱奇艺 黄金 VIP 直充",
        "IQ-GOLD-MONTH-DIRECT",
        "30.00",
        "25.50",
        "P-IQ-VIP-MONTH",
        "23.00",
    ),
    TopUp(
        "netease-music",
        "netease-vinyl-direct",
        "网易云音乐 黑胶 VIP 直充",
        "NE-MUSIC-MONTH-DIRECT",
        "15.00",
        "12.80",
        "P-NE-MUSIC-MONTH",
        "11.50",
    ),
]
TOPUP_SKU_NAME = "月卡直充"
TOPUP_VALIDITY = ("会员 31 天，到账即生效", 31)
TOPUP_USAGE = (
    "1. 充值到下单时填写的账号，请仔细核对，充错账号无法追回。\n"
    "2. 通常 1 分钟内到账；充值失败自动全额退款。\n"
    "3. 会员权益以平台官方说明为准。"
)
TOPUP_HOWTO = "下单时填写{account}，支付后自动充值到该账号，无需兑换。"

# The bundle: a card code and a top-up in one order. It sits on the platform of
# its top-up component, whose account rule (QQ) checks the account asked for.
BUNDLE_PLATFORM = "tencent-video"
BUNDLE_PRODUCT = ("tencent-netease-bundle", "腾讯视频 + 网易云音乐 联合会员包")
BUNDLE_CODE = "BUNDLE-TX-NE-MONTH"
BUNDLE_NAME = "腾讯视频 VIP 月卡 + 网易云音乐 黑胶 VIP 月卡 联合会员包"
BUNDLE_COMPONENTS = ("TX-VIP-MONTH-DIRECT", "NE-VINYL-MONTH")
BUNDLE_FACE_VALUE, BUNDLE_PRICE = "45.00", "36.80"
BUNDLE_SUMMARY = "腾讯视频 VIP 直充到 QQ 号，网易云音乐 黑胶 VIP 卡密自动发货"
BUNDLE_USAGE = (
    "1. 腾讯视频 VIP 充值到下单时填写的 QQ 号，请仔细核对，充错账号无法追回。\n"
    "2. 网易云音乐 黑胶 VIP 以卡密发货，一个卡密只能兑换一次。\n"
    "3. 会员权益以平台官方说明为准。"
)

# The bundled supplier simulator (python manage.py supplier_simulator).
SUPPLIER_NAME = "demo-sim"
DEFAULT_SIMULATOR_URL = "http://127.0.0.1:8099"
# Card SKUs restocked from the supplier: (SKU, supplier product, cost).
RESTOCKS = [("YK-VIP-MONTH", "C-YK-VIP-MONTH", "20.00")]

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
        parser.add_argument(
            "--simulator-url",
            default=DEFAULT_SIMULATOR_URL,
            help=f"the supplier simulator's base URL (default {DEFAULT_SIMULATOR_URL})",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG and not options["force"]:
            raise CommandError(
                "seed_demo creates known passwords; refusing with DEBUG off"
            )
        operators, _custodians = staff_groups_sync()
        with transaction.atomic():
            rules = self._validity_rules()
            skus = self._catalog(rules)
            self._topups()
            self._bundle(rules["month"])
        for sku in skus:
            self._codes(sku)
        try:
            mapped = self._supplier(options["simulator_url"])
        except DomainError as exc:
            raise CommandError(str(exc)) from exc
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
        self.stdout.write(
            f"  supplier: {SUPPLIER_NAME} at {options['simulator_url']} "
            f"(the bundled simulator; {mapped} SKUs mapped)"
        )

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
                    "account_rule": ACCOUNT_RULES.get(
                        p_slug, Platform.AccountRule.PHONE
                    ),
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

    def _topups(self) -> None:
        label, days = TOPUP_VALIDITY
        rule, _ = ValidityRule.objects.update_or_create(
            name=label, defaults={"duration_days": days, "redeem_within_days": None}
        )
        for position, topup in enumerate(TOPUPS):
            platform = Platform.objects.get(slug=topup.platform)
            account = Platform.AccountRule(platform.account_rule).label
            product, _ = Product.objects.update_or_create(
                slug=topup.product_slug,
                defaults={
                    "platform": platform,
                    "name": topup.product_name,
                    "sort_order": len(CATALOG) + position,
                    "summary": f"填写{account}，{platform.name}会员自动充值到账，无需兑换",
                    "usage_rules": TOPUP_USAGE,
                    "redeem_instructions": TOPUP_HOWTO.format(account=account),
                },
            )
            Sku.objects.update_or_create(
                code=topup.code,
                defaults={
                    "product": product,
                    "name": TOPUP_SKU_NAME,
                    "sort_order": 0,
                    "face_value": Decimal(topup.face_value),
                    "price": Decimal(topup.price),
                    "validity_rule": rule,
                    "delivery": Sku.Delivery.DIRECT_TOPUP,
                },
            )

    def _bundle(self, rule: ValidityRule) -> None:
        slug, name = BUNDLE_PRODUCT
        product, _ = Product.objects.update_or_create(
            slug=slug,
            defaults={
                "platform": Platform.objects.get(slug=BUNDLE_PLATFORM),
                "name": name,
                "sort_order": len(CATALOG) + len(TOPUPS),
                "summary": BUNDLE_SUMMARY,
                "usage_rules": BUNDLE_USAGE,
                "redeem_instructions": "腾讯视频 VIP 自动充值到 QQ 号，无需兑换。网易云音乐："
                + REDEEM.format(platform="网易云音乐"),
            },
        )
        bundle, _ = Sku.objects.update_or_create(
            code=BUNDLE_CODE,
            defaults={
                "product": product,
                "name": BUNDLE_NAME,
                "sort_order": 0,
                "face_value": Decimal(BUNDLE_FACE_VALUE),
                "price": Decimal(BUNDLE_PRICE),
                "validity_rule": rule,
                "delivery": Sku.Delivery.BUNDLE,
            },
        )
        components = list(Sku.objects.filter(code__in=BUNDLE_COMPONENTS))
        for component in components:
            item = BundleItem.objects.filter(bundle=bundle, component=component).first()
            item = item or BundleItem(bundle=bundle, component=component)
            item.quantity = 1
            item.full_clean(validate_unique=False, validate_constraints=False)
            item.save()
        BundleItem.objects.filter(bundle=bundle).exclude(
            component__in=components
        ).delete()

    def _supplier(self, simulator_url: str) -> int:
        """Register the simulator and map SKUs to its products; returns how many."""
        supplier_register(
            name=SUPPLIER_NAME,
            base_url=simulator_url,
            app_key=DEFAULT_APP_KEY,
            secret=DEFAULT_SECRET,
        )
        mappings = [(t.code, t.supplier_product, t.cost) for t in TOPUPS] + RESTOCKS
        for sku_code, product_id, cost in mappings:
            supplier_map(
                sku_code=sku_code,
                supplier_name=SUPPLIER_NAME,
                product_id=product_id,
                cost=Decimal(cost),
            )
        return len(mappings)

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

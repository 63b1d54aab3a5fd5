from __future__ import annotations

from decimal import Decimal

import factory

from catalog.models import BundleItem, Platform, Product, Sku, ValidityRule


class PlatformFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Platform
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"平台{n}")
    slug = factory.Sequence(lambda n: f"platform-{n}")


class ValidityRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ValidityRule

    name = factory.Sequence(lambda n: f"31 天 #{n}")
    duration_days = 31
    redeem_within_days = 180


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    platform = factory.SubFactory(PlatformFactory)
    name = factory.Sequence(lambda n: f"会员{n}")
    slug = factory.Sequence(lambda n: f"product-{n}")
    redeem_instructions = "打开 App → 我的 → 兑换码"


class SkuFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Sku

    product = factory.SubFactory(ProductFactory)
    code = factory.Sequence(lambda n: f"SKU-{n}")
    name = "月卡"
    face_value = Decimal("30.00")
    price = Decimal("25.00")
    validity_rule = factory.SubFactory(ValidityRuleFactory)
    max_per_order = 5


class BundleItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BundleItem

    bundle = factory.SubFactory(SkuFactory, delivery=Sku.Delivery.BUNDLE)
    component = factory.SubFactory(SkuFactory)
    quantity = 1

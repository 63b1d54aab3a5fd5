# Orders that already have an attribution or a partner order are `partnered`
# (orders 0012): the paid path's hooks look up only partnered orders.

from django.db import migrations
from django.db.models import Exists, OuterRef, Q


def mark(apps, schema_editor):
    Order = apps.get_model("orders", "Order")
    OrderAttribution = apps.get_model("distribution", "OrderAttribution")
    PartnerOrder = apps.get_model("distribution", "PartnerOrder")
    Order.objects.filter(
        Q(Exists(OrderAttribution.objects.filter(order_id=OuterRef("pk"))))
        | Q(Exists(PartnerOrder.objects.filter(order_id=OuterRef("pk")))),
        partnered=False,
    ).update(partnered=True)


class Migration(migrations.Migration):
    dependencies = [
        ("distribution", "0003_substore_margin"),
        ("orders", "0012_order_partnered"),
    ]

    operations = [migrations.RunPython(mark, migrations.RunPython.noop)]

"""A guest order's buyer reveals codes without an account: actor empty, its own action."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("fulfillment", "0006_cardcode_drop_covered_fk_indexes"),
    ]

    operations = [
        migrations.AlterField(
            model_name="codeaccesslog",
            name="actor",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
                verbose_name="操作人",
            ),
        ),
        migrations.AlterField(
            model_name="codeaccesslog",
            name="action",
            field=models.CharField(
                choices=[
                    ("revealed_by_buyer", "买家查看"),
                    ("revealed_by_guest", "游客买家查看"),
                    ("revealed_by_staff", "员工查看"),
                    ("exported", "导出"),
                ],
                max_length=20,
                verbose_name="动作",
            ),
        ),
    ]

"""The `login` action: a guest's checkout asks them to log in first."""

from django.db import migrations, models

CHOICES = [
    ("allow", "放行"),
    ("captcha", "验证码"),
    ("login", "要求登录"),
    ("review", "人工审核"),
    ("block", "拦截"),
]


class Migration(migrations.Migration):

    dependencies = [("risk", "0001_initial")]

    operations = [
        migrations.AlterField(
            model_name="riskrule",
            name="action",
            field=models.CharField(choices=CHOICES, max_length=10, verbose_name="处置"),
        ),
        migrations.AlterField(
            model_name="riskevaluation",
            name="decision",
            field=models.CharField(choices=CHOICES, max_length=10, verbose_name="结果"),
        ),
    ]

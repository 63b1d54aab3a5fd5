"""Guest orders: Order.user nullable, the lookup password and access token hash."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("orders", "0007_operator_alerts"),
    ]

    operations = [
        migrations.AlterField(
            model_name="order",
            name="user",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="orders",
                to=settings.AUTH_USER_MODEL,
                verbose_name="用户",
            ),
        ),
        migrations.AddField(
            model_name="order",
            name="lookup_password",
            field=models.CharField(
                blank=True,
                db_default="",
                default="",
                editable=False,
                max_length=128,
                verbose_name="查询密码",
            ),
        ),
        migrations.AddField(
            model_name="order",
            name="access_token_hash",
            field=models.CharField(
                blank=True,
                db_default="",
                default="",
                editable=False,
                max_length=64,
                verbose_name="访问令牌摘要",
            ),
        ),
        migrations.AlterField(
            model_name="orderevent",
            name="kind",
            field=models.CharField(choices=[('placed', '已下单'), ('paid', '已支付'), ('delivered', '已发货'), ('cancelled', '已取消'), ('reopened', '取消后到账，重新预留'), ('refunded', '已退款'), ('review', '风控审核'), ('fulfilling', '发货中'), ('partially_refunded', '部分退款'), ('line_delivered', '明细已发货'), ('line_refunded', '明细退款'), ('refund_requested', '发起退款'), ('refund_failed', '退款失败'), ('code_revealed', '查看卡密'), ('email_queued', '通知邮件已排队'), ('email_sent', '通知邮件已发送'), ('paid_confirmed', '人工确认到账'), ('line_redelivered', '补单'), ('codes_returned', '卡密退回'), ('problem_reported', '问题反馈'), ('problem_resolved', '问题已处理'), ('code_replaced', '更换卡密'), ('claimed', '游客订单已认领')], max_length=20, verbose_name='类型'),
        ),
        migrations.AddConstraint(
            model_name="order",
            constraint=models.UniqueConstraint(
                condition=models.Q(("user__isnull", True), models.Q(("client_token", ""), _negated=True)),
                fields=("email", "client_token"),
                name="order_guest_client_token_unique",
            ),
        ),
        migrations.AddIndex(
            model_name="order",
            index=models.Index(
                condition=models.Q(("user__isnull", True)),
                fields=["email", "status"],
                name="order_guest_email_idx",
            ),
        ),
    ]

"""The reseller's own pages: the application, the dashboard, ledger and payouts, CSV,
and a partner's webhook log.

Every page is the signed-in user's own: the reseller is always the user's, never
an id from the URL; an entry or payout id in a URL is looked up among that
reseller's rows only, so anyone else's is a 404 (never a 403: ids are not
confirmed to exist). Only an approved reseller has a dashboard; anyone else is
sent to the application page, which shows where their application stands.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.models import User
from catalog.selectors import platform_list_for_storefront
from distribution import dashboard as reads
from distribution.charts import bar_chart
from distribution.errors import PayoutError, ResellerError
from distribution.forms import PayoutRequestForm, ResellerApplicationForm
from distribution.models import CommissionEntry, PartnerAccount, Payout, Reseller
from distribution.selectors import reseller_balance_get, reseller_get_for_user
from distribution.services import payout_request
from distribution.services.applications import reseller_application_submit
from distribution.share import product_links, referral_link, substore_link
from distribution.webhooks import webhook_delivery_list_for_reseller

ENTRIES_PER_PAGE = 20
WEBHOOKS_PER_PAGE = 20
# Shown at the field; the services' own texts are translated at import time, so
# the page words its errors itself, by the error's code.
ERR_BELOW_MINIMUM = gettext_lazy("可提现余额 ¥%(available)s，满 ¥%(minimum)s 才能提现")
ERR_PAYOUT_OPEN = gettext_lazy("你已有一笔待审核的提现，请等待处理")
ERR_NOT_APPROVED = gettext_lazy("只有已通过审核的代理可以提现")
ERR_BALANCE_CHANGED = gettext_lazy(
    "可提现余额已变为 ¥%(available)s，请确认新的金额后再提交"
)
ERR_SUSPENDED = gettext_lazy("你的代理资格已被停用，请联系客服")
MSG_PAYOUT_REQUESTED = gettext_lazy(
    "已申请提现 ¥%(amount)s，运营审核打款后会在这里显示。"
)
MSG_APPLIED = gettext_lazy("申请已提交，我们会尽快审核。")


class AuthedRequest(HttpRequest):
    """What a @login_required view receives: the user is a real one."""

    user: User


def _approved_reseller(request: AuthedRequest) -> Reseller | None:
    reseller = reseller_get_for_user(user_id=request.user.pk)
    return reseller if reseller is not None and reseller.is_approved else None


def _get_reseller_for_user(request: AuthedRequest) -> Reseller:
    """The user's own approved reseller account, or 404."""
    reseller = _approved_reseller(request)
    if reseller is None:
        raise Http404
    return reseller


def _api_account(reseller: Reseller) -> PartnerAccount | None:
    """The reseller's partner account while its API access is on, else None.

    Loaded with the reseller (reseller_get_for_user): no query of its own.
    """
    account: PartnerAccount | None = getattr(reseller, "partner_account", None)
    return account if account is not None and account.is_enabled else None


# ---- The application ------------------------------------------------------------


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def reseller_apply(request: AuthedRequest) -> HttpResponse:
    """GET: the form, or where the application stands. POST: apply (or again after a rejection)."""
    reseller = reseller_get_for_user(user_id=request.user.pk)
    if reseller is not None and reseller.is_approved:
        return redirect("distribution:dashboard")
    can_apply = reseller is None or reseller.status == Reseller.Status.REJECTED
    form = ResellerApplicationForm(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        if not can_apply:  # an open application or a suspension: shown as it is
            return redirect("distribution:reseller-apply")
        if form.is_valid():
            try:
                reseller_application_submit(
                    user=request.user,
                    display_name=form.cleaned_data["display_name"],
                    contact=form.cleaned_data["contact"],
                    note=form.cleaned_data["note"],
                )
            except ResellerError as exc:
                if exc.code == "already_reseller":  # approved meanwhile
                    return redirect("distribution:dashboard")
                form.add_error(
                    None, ERR_SUSPENDED if exc.code == "suspended" else exc.message
                )
            else:
                messages.success(request, MSG_APPLIED)
                return redirect("distribution:reseller-apply")
        status = 400
    return render(
        request,
        "distribution/reseller_apply.html",
        {"reseller": reseller, "form": form, "can_apply": can_apply},
        status=status,
    )


# ---- The dashboard ----------------------------------------------------------------


def _dashboard_context(
    reseller: Reseller, *, payout_error: str | None = None
) -> dict[str, Any]:
    """Everything the dashboard shows (a fixed number of queries, pinned by a test)."""
    balances = reseller_balance_get(reseller_id=reseller.pk)
    # The form offers the whole available balance; after an error it offers
    # the balance as it is now, the error at its field.
    payout_form = PayoutRequestForm(
        {"amount": f"{balances.available:.2f}"} if payout_error else None,
        initial={"amount": f"{balances.available:.2f}"},
    )
    if payout_error:
        payout_form.is_valid()
        payout_form.add_error("amount", payout_error)
    daily = reads.commission_daily(reseller_id=reseller.pk)
    payouts = list(
        reads.payout_list_for_reseller(reseller_id=reseller.pk)[: reads.RECENT_PAYOUTS]
    )
    minimum: Decimal = settings.PAYOUT_MINIMUM
    open_payout = next((p for p in payouts if p.is_open), None)
    return {
        "reseller": reseller,
        "balances": balances,
        "kpis": reads.reseller_kpis(reseller_id=reseller.pk),
        "chart": bar_chart(daily),
        "daily": daily,
        "entries": list(
            reads.entry_list_for_reseller(reseller_id=reseller.pk)[
                : reads.RECENT_ENTRIES
            ]
        ),
        "downline": reads.downline_for_reseller(reseller=reseller),
        "referral": referral_link(
            reseller, label=_("推广链接"), qr_title=_("推广链接二维码")
        ),
        "substore": substore_link(
            reseller, label=_("我的分站"), qr_title=_("分站二维码")
        ),
        "products": product_links(
            reseller,
            platform_list_for_storefront(),
            qr_title=_("%(name)s 推广二维码"),
        ),
        "payouts": payouts,
        "open_payout": open_payout,
        "payout_form": payout_form,
        "payout_minimum": minimum,
        "can_request_payout": open_payout is None
        and balances.available >= minimum
        and balances.available > 0,
        "api_account": _api_account(reseller),
    }


@login_required
@never_cache
@require_GET
def dashboard(request: AuthedRequest) -> HttpResponse:
    """The approved reseller's dashboard; anyone else goes to the application page."""
    reseller = _approved_reseller(request)
    if reseller is None:
        return redirect("distribution:reseller-apply")
    return render(request, "distribution/dashboard.html", _dashboard_context(reseller))


def _open_payout_amount(reseller: Reseller) -> Decimal | None:
    return (
        Payout.objects.filter(reseller=reseller, status=Payout.Status.REQUESTED)
        .values_list("amount", flat=True)
        .first()
    )


def _payout_error(reseller: Reseller, amount: Decimal) -> str | None:
    """Request the payout the reseller confirmed; the error for the field, or None.

    A second click of the same form finds the first click's request open for
    the same amount: that is its answer, not an error (the database keeps one
    open request per reseller whatever the timing).
    """
    open_amount = _open_payout_amount(reseller)
    if open_amount == amount:
        return None
    available = reseller_balance_get(reseller_id=reseller.pk).available
    if open_amount is None and amount != available:
        if _open_payout_amount(reseller) == amount:
            return None  # the other click's request committed between the reads
        return str(
            ERR_BALANCE_CHANGED % {"available": f"{available:.2f}"}
        )  # stale page
    try:
        payout_request(reseller_id=reseller.pk)
    except PayoutError as exc:
        if exc.code == "payout_open":
            if _open_payout_amount(reseller) == amount:  # the other click won
                return None
            return str(ERR_PAYOUT_OPEN)
        if exc.code == "below_minimum":
            return str(
                ERR_BELOW_MINIMUM
                % {
                    "available": f"{available:.2f}",
                    "minimum": f"{settings.PAYOUT_MINIMUM:.2f}",
                }
            )
        if exc.code == "not_approved":
            return str(ERR_NOT_APPROVED)
        return exc.message
    return None


@login_required
@never_cache
@require_POST
def payout_create(request: AuthedRequest) -> HttpResponse:
    """Withdraw the whole available balance the reseller confirmed; errors at the amount."""
    reseller = _get_reseller_for_user(request)
    form = PayoutRequestForm(request.POST)
    if form.is_valid():
        amount: Decimal = form.cleaned_data["amount"]
        error = _payout_error(reseller, amount)
        if error is None:
            messages.success(
                request, MSG_PAYOUT_REQUESTED % {"amount": f"{amount:.2f}"}
            )
            return redirect(reverse("distribution:dashboard") + "#payouts")
    else:
        error = " ".join(str(e) for e in form.errors["amount"])
    return render(
        request,
        "distribution/dashboard.html",
        _dashboard_context(reseller, payout_error=error),
        status=400,
    )


# ---- The ledger and payouts -------------------------------------------------------


@login_required
@never_cache
@require_GET
def entry_list(request: AuthedRequest) -> HttpResponse:
    """The whole ledger, newest first, a page at a time."""
    reseller = _get_reseller_for_user(request)
    page = Paginator(
        reads.entry_list_for_reseller(reseller_id=reseller.pk), ENTRIES_PER_PAGE
    ).get_page(request.GET.get("page"))
    return render(
        request,
        "distribution/entry_list.html",
        {"reseller": reseller, "page": page, "entries": page.object_list},
    )


@login_required
@never_cache
@require_GET
def entry_detail(request: AuthedRequest, entry_id: int) -> HttpResponse:
    """One of the reseller's ledger rows, its order (masked) and the rows that adjust it."""
    reseller = _get_reseller_for_user(request)
    entry = reads.entry_get_for_reseller(reseller_id=reseller.pk, entry_id=entry_id)
    if entry is None:
        raise Http404
    return render(
        request,
        "distribution/entry_detail.html",
        {"entry": entry, "related": reads.entry_related(entry=entry)},
    )


@login_required
@never_cache
@require_GET
def payout_detail(request: AuthedRequest, payout_id: int) -> HttpResponse:
    """One of the reseller's payout requests and the ledger rows it holds."""
    reseller = _get_reseller_for_user(request)
    payout = reads.payout_get_for_reseller(reseller_id=reseller.pk, payout_id=payout_id)
    if payout is None:
        raise Http404
    entries = reads.entry_list_for_reseller(reseller_id=reseller.pk).filter(
        payout=payout
    )
    return render(
        request,
        "distribution/payout_detail.html",
        {"payout": payout, "entries": list(entries)},
    )


class _Echo:
    """csv.writer's file: hands each written row back instead of storing it."""

    def write(self, value: str) -> str:
        return value


def _csv_response(entries: QuerySet[CommissionEntry], filename: str) -> HttpResponse:
    header = [
        _("编号"),
        _("时间"),
        _("类型"),
        _("层级"),
        _("状态"),
        _("金额"),
        _("佣金比例"),
        _("计佣金额"),
        _("订单"),
        _("买家"),
        _("商品"),
        _("规格"),
        _("提现单号"),
    ]
    writer = csv.writer(_Echo())

    def rows() -> Iterator[str]:
        yield "\ufeff"  # a BOM: spreadsheet apps then read the Chinese as UTF-8
        yield writer.writerow(header)
        for row in reads.ledger_csv_rows(entries):
            yield writer.writerow(row)

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response  # type: ignore[return-value]


@login_required
@never_cache
@require_GET
def ledger_export(request: AuthedRequest) -> HttpResponse:
    """The reseller's whole ledger as CSV."""
    reseller = _get_reseller_for_user(request)
    day = timezone.localdate().strftime("%Y%m%d")
    return _csv_response(
        reads.entry_list_for_reseller(reseller_id=reseller.pk),
        f"commission-{reseller.referral_code}-{day}.csv",
    )


@login_required
@never_cache
@require_GET
def payout_export(request: AuthedRequest, payout_id: int) -> HttpResponse:
    """The ledger rows one of the reseller's payouts holds, as CSV."""
    reseller = _get_reseller_for_user(request)
    payout = reads.payout_get_for_reseller(reseller_id=reseller.pk, payout_id=payout_id)
    if payout is None:
        raise Http404
    return _csv_response(
        reads.entry_list_for_reseller(reseller_id=reseller.pk).filter(payout=payout),
        f"payout-{payout.pk}.csv",
    )


# ---- The partner's webhook log ------------------------------------------------------


@login_required
@never_cache
@require_GET
def webhook_list(request: AuthedRequest) -> HttpResponse:
    """A partner's webhook deliveries and every attempt, newest first (never the body).

    Only while the reseller's API access is on; anyone else gets a 404.
    """
    reseller = _get_reseller_for_user(request)
    account = _api_account(reseller)
    if account is None:
        raise Http404
    page = Paginator(
        webhook_delivery_list_for_reseller(reseller_id=reseller.pk), WEBHOOKS_PER_PAGE
    ).get_page(request.GET.get("page"))
    return render(
        request,
        "distribution/webhook_list.html",
        {"account": account, "page": page, "deliveries": page.object_list},
    )

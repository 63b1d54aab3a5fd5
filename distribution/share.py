"""A reseller's share links (referral, sub-store, each product) and their QR codes.

Links are absolute on SITE_URL, never on the request's Host header: a poster
printed from the dashboard must point at the shop, whatever name the page was
reached by. QR codes are segno's inline SVG (no script, no style attribute:
CSP-safe); a code depends only on its link and title, so each is drawn once per
process and kept in the local cache.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlencode

import segno
from django.conf import settings
from django.core.cache import caches
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe

from catalog.models import Platform
from distribution.models import Reseller

QR_CACHE_SECONDS = 24 * 60 * 60
SUBSTORE_PATH = "/s/{slug}/"  # SPEC §4.3; routed by the sub-store app


@dataclass(frozen=True)
class ShareLink:
    key: str  # unique on the page: element ids derive from it
    label: str
    url: str
    qr: SafeString


@dataclass(frozen=True)
class ProductShare:
    platform: str
    link: ShareLink


def qr_svg(data: str, *, title: str) -> SafeString:
    """`data` as a QR code in inline SVG, announced as one image titled `title`."""
    key = (
        "qr:" + hashlib.blake2b(f"{data}\n{title}".encode(), digest_size=16).hexdigest()
    )
    local = caches["local"]
    svg: str | None = local.get(key)
    if svg is None:
        svg = str(
            segno.make(data, error="m").svg_inline(
                scale=4,
                border=2,
                title=title,
                svgclass="qr__svg",
                lineclass=None,
                omitsize=True,  # a viewBox: the stylesheet sizes it
            )
        ).replace("<svg ", '<svg role="img" ', 1)
        local.set(key, svg, QR_CACHE_SECONDS)
    # segno writes the markup itself and escapes the title it is given.
    return mark_safe(svg)  # noqa: S308


def _ref(url_path: str, code: str) -> str:
    return f"{settings.SITE_URL}{url_path}?{urlencode({'ref': code})}"


def referral_link(reseller: Reseller, *, label: str, qr_title: str) -> ShareLink:
    url = _ref("/", reseller.referral_code)
    return ShareLink("referral", label, url, qr_svg(url, title=qr_title))


def substore_link(reseller: Reseller, *, label: str, qr_title: str) -> ShareLink | None:
    """The sub-store's link, once the operator has given it a slug."""
    if not reseller.substore_slug:
        return None
    url = settings.SITE_URL + SUBSTORE_PATH.format(slug=reseller.substore_slug)
    return ShareLink("substore", label, url, qr_svg(url, title=qr_title))


def product_links(
    reseller: Reseller, platforms: Iterable[Platform], *, qr_title: str
) -> list[ProductShare]:
    """A referral link to each product on sale (`products_on_sale`, from the catalog)."""
    shares = []
    for platform in platforms:
        for product in platform.products_on_sale:  # type: ignore[attr-defined]
            url = _ref(
                reverse("storefront:product-detail", args=[product.slug]),
                reseller.referral_code,
            )
            title = qr_title % {"name": product.name}
            shares.append(
                ProductShare(
                    platform.name,
                    ShareLink(
                        f"product-{product.pk}",
                        product.name,
                        url,
                        qr_svg(url, title=title),
                    ),
                )
            )
    return shares

"""config/lib/urls.py: reverse_arg answers what reverse() answers."""

from __future__ import annotations

import pytest
from django.test import override_settings
from django.urls import NoReverseMatch, clear_script_prefix, reverse, set_script_prefix

from config.lib.urls import reverse_arg

CHECKOUT_URLS = [
    ("orders:payment-notify", "sandbox"),
    ("orders:order-detail", "KQ7H2M9XQ4R8T6WZPA3C"),
    ("orders:sandbox-pay", "a-Zq_09xYtoken-urlsafe_AB"),
]


@pytest.mark.parametrize(("name", "arg"), CHECKOUT_URLS)
def test_reverse_arg_is_reverse_for_the_checkout_urls(name, arg):
    first = reverse_arg(name, arg)
    again = reverse_arg(name, arg + "2")  # from the template

    assert first == reverse(name, args=[arg])
    assert again == reverse(name, args=[arg + "2"])


@pytest.mark.parametrize("arg", ["a b", "ü~é", "x.y", "%41"])
def test_reverse_arg_quotes_an_argument_that_is_not_plain_as_reverse_does(arg):
    assert reverse_arg("orders:order-detail", arg) == reverse(
        "orders:order-detail", args=[arg]
    )


def test_reverse_arg_refuses_what_reverse_refuses():
    with pytest.raises(NoReverseMatch):
        reverse_arg("orders:order-detail", "a/b")
    with pytest.raises(NoReverseMatch):
        reverse_arg("orders:no-such-page", "x")


def test_reverse_arg_leaves_a_narrow_converter_to_reverse():
    assert reverse_arg("distribution:entry-detail", "12") == reverse(
        "distribution:entry-detail", args=["12"]
    )
    with pytest.raises(NoReverseMatch):  # an int converter: not a number
        reverse_arg("distribution:entry-detail", "twelve")


def test_reverse_arg_follows_another_url_configuration():
    here = reverse_arg("orders:order-detail", "KQ1")

    with override_settings(ROOT_URLCONF="tests.config.urls_elsewhere"):
        elsewhere = reverse_arg("orders:order-detail", "KQ1")

    assert here == "/orders/KQ1/"
    assert elsewhere == "/shop/orders/KQ1/"
    assert reverse_arg("orders:order-detail", "KQ1") == here


def test_reverse_arg_follows_the_script_prefix():
    reverse_arg("orders:order-detail", "KQ1")  # a template for the prefix "/"

    set_script_prefix("/kaquan/")
    try:
        prefixed = reverse_arg("orders:order-detail", "KQ1")
    finally:
        clear_script_prefix()

    assert prefixed == "/kaquan/orders/KQ1/"
    assert reverse_arg("orders:order-detail", "KQ1") == "/orders/KQ1/"

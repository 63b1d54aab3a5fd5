"""orders/forms.py: each checkout form has fields of its own, as Django copies them."""

from __future__ import annotations

import copy

import pytest

from orders.forms import CheckoutForm, PayForm

pytestmark = pytest.mark.django_db


def _without(values: dict, *names: str) -> dict:
    return {k: v for k, v in values.items() if k not in names}


def test_checkout_form_fields_copy_into_equal_fields_of_their_own():
    # What each CheckoutForm does first (Form.__init__).
    copies = copy.deepcopy(CheckoutForm.base_fields)

    assert list(copies) == list(CheckoutForm.base_fields)
    for name, base in CheckoutForm.base_fields.items():
        field = copies[name]
        assert type(field) is type(base)
        assert type(field.widget) is type(base.widget)
        for own in ("widget", "error_messages", "validators"):
            assert getattr(field, own) is not getattr(base, own), (name, own)
        assert field.widget.attrs is not base.widget.attrs
        assert _without(vars(field), "widget") == _without(vars(base), "widget")
        assert vars(field.widget) == vars(base.widget)


def test_a_checkout_form_changing_its_fields_leaves_other_forms_alone():
    first = CheckoutForm({"sku": "TX"})
    first.fields["gateway"].choices = [("only-this-form", "x")]
    first.fields["quantity"].widget.attrs["data-x"] = "1"
    first.fields["sku"].error_messages["required"] = "changed"
    first.fields["recharge_account"].validators.append(lambda value: None)

    second = CheckoutForm({"sku": "TX"})
    pay = PayForm({})

    assert ("only-this-form", "x") not in second.fields["gateway"].choices
    assert ("only-this-form", "x") not in pay.fields["gateway"].choices
    assert "data-x" not in second.fields["quantity"].widget.attrs
    assert "data-x" not in CheckoutForm.base_fields["quantity"].widget.attrs
    assert second.fields["sku"].error_messages["required"] != "changed"
    assert len(second.fields["recharge_account"].validators) == len(
        CheckoutForm.base_fields["recharge_account"].validators
    )


def test_checkout_form_widgets_keep_their_kinds():
    form = CheckoutForm({"sku": "TX"})

    kinds = {name: form[name].widget_type for name in form.fields}

    assert kinds == {
        "sku": "text",
        "quantity": "number",
        "token": "hidden",
        "recharge_account": "text",
        "gateway": "radioselect",
    }
    assert form.fields["quantity"].widget.attrs == {"min": 1, "max": 100}

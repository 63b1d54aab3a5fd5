from __future__ import annotations

import copy
from typing import Any, cast

from captcha.fields import CaptchaField
from django import forms
from django.utils.choices import normalize_choices
from django.utils.translation import gettext_lazy as _

from orders.gateways import Gateway, gateway_default, gateways_all

ERR_NO_GATEWAY = _("暂无可用的支付方式，请稍后再试")
ERR_PASSWORDS_DIFFER = _("两次输入的查询密码不一致")
LOOKUP_PASSWORD_MIN = 6


# Every form copies its class's fields (Form.__init__: copy.deepcopy), and the
# checkout builds a form on every POST. Django's __deepcopy__ of a field and of
# a widget starts with copy.copy(self), which for these objects (a __dict__, no
# __slots__, no __setstate__) goes through copyreg's reduce and reconstruct to
# make a new object with the same attributes: __copy__ does that directly. The
# copies are Django's own otherwise (the widget, attrs, choices, messages and
# validators of each form its own).
class _CopiedDirectly:
    def __copy__(self) -> Any:
        cls = type(self)
        new = cls.__new__(cls)
        new.__dict__.update(self.__dict__)
        return new


class _FieldCopied(_CopiedDirectly):
    """Field.__deepcopy__ (Django 5.2) with its copies made directly: the field
    by __copy__, its widget by the widget's own __deepcopy__ (each field has
    a widget of its own: copy.deepcopy's memo would never find it)."""

    widget: forms.Widget  # what the field classes below have
    error_messages: dict[str, Any]
    validators: list[Any]

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        result = self.__copy__()
        memo[id(self)] = result
        result.widget = self.widget.__deepcopy__(memo)
        result.error_messages = self.error_messages.copy()
        result.validators = self.validators[:]
        return result


class _WidgetCopied(_CopiedDirectly):
    """Widget.__deepcopy__ (Django 5.2) with the copy made by __copy__."""

    attrs: dict[str, Any]  # what the widget classes below have

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        obj = self.__copy__()
        obj.attrs = self.attrs.copy()
        memo[id(self)] = obj
        return obj


class _CharField(_FieldCopied, forms.CharField):
    pass


class _IntegerField(_FieldCopied, forms.IntegerField):
    pass


class _ChoiceField(_FieldCopied, forms.ChoiceField):
    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        result = super().__deepcopy__(memo)
        result._choices = copy.deepcopy(self._choices, memo)  # type: ignore[attr-defined]
        return result


# The widgets keep Django's names: BoundField.widget_type is made from them.
class TextInput(_WidgetCopied, forms.TextInput):
    pass


class NumberInput(_WidgetCopied, forms.NumberInput):
    pass


class HiddenInput(_WidgetCopied, forms.HiddenInput):
    pass


class RadioSelect(_WidgetCopied, forms.RadioSelect):
    """ChoiceWidget.__deepcopy__: the choices copied too."""

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        obj = super().__deepcopy__(memo)
        obj.choices = copy.copy(self.choices)
        return obj


class _Fields(dict[str, forms.Field]):
    """A form class's fields, copied for each form by each field's own
    __deepcopy__ (what copy.deepcopy of a dict of them calls, without its
    dispatch, memo and key copies per item)."""

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, forms.Field]:
        return {
            name: field.__deepcopy__(memo)  # type: ignore[attr-defined]
            for name, field in self.items()
        }


def _gateway_field() -> forms.ChoiceField:
    """The shopper's payment method (`gateway`, SPEC 4.3): checkout and "pay now"."""
    return _ChoiceField(
        label=_("支付方式"),
        choices=[],  # the enabled gateways, set per form (_gateway_offer)
        required=False,
        widget=RadioSelect,
        error_messages={"invalid_choice": _("请选择可用的支付方式")},
    )


# The enabled gateways and their choices as Django normalises them: one list per
# set of gateways (the registry changes only with the settings). Setting
# `choices` normalised them twice per form, the field's and the widget's (~30
# Python calls); each form still gets lists of its own.
_offered: tuple[tuple[Gateway, ...], list[Any]] = ((), [])


def _gateway_offer(form: forms.Form) -> None:
    """Offer the gateways enabled now (settings may change between requests)."""
    global _offered
    gateway = cast(forms.ChoiceField, form.fields["gateway"])
    enabled = tuple(gateways_all())
    seen, choices = _offered
    if seen != enabled:
        choices = normalize_choices([(g.name, g.label) for g in enabled])
        _offered = (enabled, choices)
    # What `gateway.choices = ...` leaves: the field's and the widget's lists.
    gateway._choices = choices[:]  # type: ignore[attr-defined]
    gateway.widget._choices = choices[:]


def _gateway_clean(chosen: object) -> str:
    """The chosen gateway, or the first enabled one when none was chosen."""
    if chosen:
        return str(chosen)
    default = gateway_default()
    if default is None:
        raise forms.ValidationError(ERR_NO_GATEWAY, code="no_gateway")
    return default.name


class CheckoutForm(forms.Form):
    sku = _CharField(max_length=40, widget=TextInput)
    quantity = _IntegerField(
        label=_("数量"),
        min_value=1,
        max_value=100,
        widget=NumberInput,
        error_messages={
            "invalid": _("请输入有效的数量"),
            "min_value": _("数量至少为 1"),
            "max_value": _("单笔最多购买 100 件"),
        },
    )
    token = _CharField(max_length=64, required=False, widget=HiddenInput)
    recharge_account = _CharField(
        label=_("充值账号"),
        max_length=64,
        required=False,
        strip=True,
        widget=TextInput,
        error_messages={"max_length": _("充值账号最长 64 个字符")},
    )
    gateway = _gateway_field()

    def __init__(
        self,
        *args: Any,
        captcha: bool = False,
        guest: bool = False,
        guest_required: bool = True,
        **kwargs: Any,
    ) -> None:
        """With `captcha`, the submitted answer to the risk check's captcha is checked too.

        `guest` (a shopper not logged in): the email the order goes to and a
        lookup password (twice), required unless `guest_required` is False (the
        confirmation page's first GET, asking for another captcha image).
        """
        super().__init__(*args, **kwargs)
        _gateway_offer(self)
        if captcha:
            self.ask_captcha()
        if guest:
            self._guest_fields(required=guest_required)

    def _guest_fields(self, *, required: bool) -> None:
        self.fields["email"] = forms.EmailField(
            label=_("邮箱"),
            max_length=254,
            required=required,
            error_messages={
                "required": _("请填写接收订单通知的邮箱"),
                "invalid": _("请输入有效的邮箱地址，例如 name@example.com"),
            },
        )
        self.fields["lookup_password"] = forms.CharField(
            label=_("查询密码"),
            min_length=LOOKUP_PASSWORD_MIN,
            max_length=64,
            required=required,
            strip=False,
            widget=forms.PasswordInput,
            error_messages={
                "required": _("请设置查询密码，以后凭订单号、邮箱和它查询订单"),
                "min_length": _("查询密码至少 %(limit_value)d 位"),
                "max_length": _("查询密码最长 %(limit_value)d 位"),
            },
        )
        self.fields["lookup_password2"] = forms.CharField(
            label=_("确认查询密码"),
            max_length=64,
            required=required,
            strip=False,
            widget=forms.PasswordInput,
            error_messages={"required": _("请再次输入查询密码")},
        )

    def clean_email(self) -> str:
        return str(self.cleaned_data.get("email") or "").strip().lower()

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        first = cleaned.get("lookup_password")
        second = cleaned.get("lookup_password2")
        if first and second is not None and first != second:
            self.add_error("lookup_password2", ERR_PASSWORDS_DIFFER)
        return cleaned

    def ask_captcha(self) -> None:
        """The page asks for a captcha (risk/checkout.py): the field is shown from now on."""
        if "captcha" not in self.fields:
            # One attempt per image (django-simple-captcha deletes it either way).
            self.fields["captcha"] = CaptchaField(
                label=_("验证码"),
                error_messages={
                    "required": _("请输入图中的验证码"),
                    "incomplete": _("请输入图中的验证码"),
                    "invalid": _("验证码不正确，请看新的图片重新输入"),
                },
            )

    def clean_gateway(self) -> str:
        return _gateway_clean(self.cleaned_data.get("gateway"))

    def _clean_fields(self) -> None:
        """BaseForm._clean_fields (Django 5.2) without a BoundField per field.

        `Field._clean_bound_field(bf)` cleans `bf.data`, the widget's value from
        the form's data under the field's html name: read here directly (a
        BoundField cost ~10 Python calls per field; the page builds its own when
        it is shown). A disabled field, or one cleaning its bound field its own
        way (a file field), goes through the BoundField as in Django.
        """
        data, files = self.data, self.files
        for name, field in self.fields.items():
            try:
                if field.disabled or (
                    type(field)._clean_bound_field is not _FIELD_CLEAN_BOUND  # type: ignore[attr-defined]
                ):
                    value = field._clean_bound_field(self[name])  # type: ignore[attr-defined]
                else:
                    value = field.clean(
                        field.widget.value_from_datadict(
                            data, files, self.add_prefix(name)
                        )
                    )
                self.cleaned_data[name] = value
                clean_field = getattr(self, f"clean_{name}", None)
                if clean_field is not None:
                    self.cleaned_data[name] = clean_field()
            except forms.ValidationError as e:
                self.add_error(name, e)


_FIELD_CLEAN_BOUND = forms.Field._clean_bound_field  # type: ignore[attr-defined]
CheckoutForm.base_fields = _Fields(CheckoutForm.base_fields)


class PayForm(forms.Form):
    """ "Pay now" on a pending order's page: the gateway, chosen as at checkout.

    The same field, choices and checks as CheckoutForm's `gateway` (SPEC 4.3):
    an unknown or disabled gateway is an error at the field; none chosen is the
    first enabled one (a page from before the picker still pays).
    """

    gateway = _gateway_field()

    def __init__(self, *args: Any, chosen: str = "", **kwargs: Any) -> None:
        """`chosen`: the gateway the shopper last went to pay with (the order
        page's ?paying=), picked in advance when it is still offered."""
        super().__init__(*args, **kwargs)
        _gateway_offer(self)
        if chosen and chosen in {g.name for g in gateways_all()}:
            self.initial["gateway"] = chosen

    def clean_gateway(self) -> str:
        return _gateway_clean(self.cleaned_data.get("gateway"))


class OrderLookupForm(forms.Form):
    """/orders/lookup/: a guest order by its number, email and lookup password."""

    number = forms.CharField(
        label=_("订单号"),
        max_length=40,
        error_messages={"required": _("请填写订单号")},
    )
    email = forms.EmailField(
        label=_("下单邮箱"),
        max_length=254,
        error_messages={
            "required": _("请填写下单时的邮箱"),
            "invalid": _("请输入有效的邮箱地址，例如 name@example.com"),
        },
    )
    password = forms.CharField(
        label=_("查询密码"),
        max_length=64,
        strip=False,
        widget=forms.PasswordInput,
        error_messages={"required": _("请填写查询密码")},
    )

    def clean_number(self) -> str:
        return str(self.cleaned_data["number"]).strip().upper()

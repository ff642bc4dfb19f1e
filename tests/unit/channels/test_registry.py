"""Every built-in backend fulfils the contract; backend_choices; the channel system checks."""

import pytest
from django import forms
from django.test import override_settings
from django.utils import translation
from django.utils.functional import Promise
from django.utils.module_loading import import_string

from oscar_journeys import app_settings
from oscar_journeys.channels import backend_choices
from oscar_journeys.channels.base import BaseChannel
from oscar_journeys.checks import check_channel_backends, check_channel_security

EXTRA = [
    "oscar_journeys.channels.console.ConsoleSmsChannel",
    "oscar_journeys.channels.locmem.LocmemSmsChannel",
]
ALL = list(app_settings.DEFAULTS["CHANNEL_BACKENDS"]) + EXTRA


@pytest.mark.parametrize("path", ALL)
def test_backends_fulfil_the_contract(path):
    cls = import_string(path)
    assert issubclass(cls, BaseChannel)
    assert cls.kind in {"email", "sms", "push", "webhook"}
    assert isinstance(cls.channel_name, Promise)  # translated lazily
    fields = cls.option_fields()
    assert all(isinstance(f, forms.Field) and isinstance(f.label, Promise) for f in fields.values())
    assert set(cls.secret_options) <= set(fields)
    assert cls.deliver is not BaseChannel.deliver


def test_backend_choices_filter_by_kind():
    assert [path for path, _name in backend_choices("sms")] == [
        "oscar_journeys.channels.sms.HttpSmsChannel",
        "oscar_journeys.channels.sms.TwilioSmsChannel",
        "oscar_journeys.channels.console.ConsoleSmsChannel",
        "oscar_journeys.channels.locmem.LocmemSmsChannel",
    ]
    assert len(backend_choices()) == len(app_settings.CHANNEL_BACKENDS)
    with translation.override("en"):
        assert dict(backend_choices())["oscar_journeys.channels.webhook.WebhookChannel"] == "Webhook (signed JSON)"


@override_settings(OSCAR_JOURNEYS_CHANNEL_BACKENDS=["oscar_journeys.channels.nope.NoChannel", "oscar_journeys.channels.email.EmailChannel"])
def test_backend_choices_skip_what_does_not_import():
    assert [p for p, _n in backend_choices()] == ["oscar_journeys.channels.email.EmailChannel"]


class NoKind(BaseChannel):
    channel_name = "x"


class SecretNotAnOption(BaseChannel):
    kind, channel_name, secret_options = "sms", "x", ("api_key",)


def test_checks_accept_the_defaults():
    assert check_channel_backends(None) == []


@override_settings(
    OSCAR_JOURNEYS_CHANNEL_BACKENDS=[
        "oscar_journeys.channels.nope.NoChannel",
        "django.core.mail.backends.locmem.EmailBackend",
        f"{__name__}.NoKind",
        f"{__name__}.SecretNotAnOption",
    ]
)
def test_checks_report_bad_backends():
    found = [(m.id, m.msg) for m in check_channel_backends(None)]
    assert [i for i, _m in found] == ["oscar_journeys.E004", "oscar_journeys.E005", "oscar_journeys.E005", "oscar_journeys.E005"]
    assert "nope.NoChannel" in found[0][1]
    assert "not a subclass" in found[1][1]
    assert "kind None" in found[2][1]
    assert "api_key" in found[3][1]


def test_deploy_check_warns_about_private_addresses_and_plain_http_links():
    with override_settings(OSCAR_JOURNEYS_ALLOW_PRIVATE_ADDRESSES=True, OSCAR_JOURNEYS_SITE_URL="http://shop.example.com"):
        assert {m.id for m in check_channel_security(None)} == {"oscar_journeys.W004", "oscar_journeys.W005"}
    with override_settings(OSCAR_JOURNEYS_ALLOW_PRIVATE_ADDRESSES=False, OSCAR_JOURNEYS_SITE_URL="https://shop.example.com"):
        assert check_channel_security(None) == []
    with override_settings(OSCAR_JOURNEYS_ALLOW_PRIVATE_ADDRESSES=False, OSCAR_JOURNEYS_SITE_URL=None):
        assert check_channel_security(None) == []

"""Channel records with each backend: Channel.clean() validates the options through the
backend, keeps secrets apart, and get_backend() sends with what was saved."""

import pytest
from django.core.checks import run_checks
from django.core.exceptions import ValidationError
from django.test import override_settings

from oscar_journeys.channels import locmem
from oscar_journeys.channels.base import OutgoingMessage
from oscar_journeys.models import Channel

pytestmark = pytest.mark.django_db

SID = "AC" + "0" * 32
VALID = [
    ("email", "oscar_journeys.channels.email.EmailChannel",
     {"from_email": "Shop <news@shop.example.com>", "host": "smtp.example.com", "username": "u", "password": "smtp-pw"},
     {"password": "smtp-pw"}),
    ("sms", "oscar_journeys.channels.sms.HttpSmsChannel",
     {"url": "https://sms.example.com/send", "auth": "bearer", "token": "sms-token", "from_number": "Shop"},
     {"token": "sms-token"}),
    ("sms", "oscar_journeys.channels.sms.TwilioSmsChannel",
     {"account_sid": SID, "auth_token": "twilio-token", "from_number": "+15005550006"},
     {"auth_token": "twilio-token"}),
    ("push", "oscar_journeys.channels.push.HttpPushChannel",
     {"url": "https://push.example.com/send", "auth": "bearer", "token": "push-token"},
     {"token": "push-token"}),
    ("webhook", "oscar_journeys.channels.webhook.WebhookChannel",
     {"url": "https://hooks.example.com/journeys", "secret": "a-webhook-secret-of-some-length"},
     {"secret": "a-webhook-secret-of-some-length"}),
    ("email", "oscar_journeys.channels.console.ConsoleChannel", {}, {}),
    ("email", "oscar_journeys.channels.locmem.LocmemChannel", {"fail_with": ""}, {}),
]


@pytest.mark.parametrize("kind, backend, options, secrets", VALID, ids=[v[1].rsplit(".", 1)[1] for v in VALID])
def test_clean_keeps_secrets_apart_and_the_backend_gets_them(kind, backend, options, secrets):
    channel = Channel(name=f"{backend} channel", kind=kind, backend=backend, options=dict(options))
    channel.full_clean()
    channel.save()
    channel.refresh_from_db()
    assert channel.secrets == secrets
    assert not set(secrets) & set(channel.options)
    for value in secrets.values():
        assert value not in str(channel.options)
    instance = channel.get_backend()
    for name, value in secrets.items():
        assert instance.option(name) == value


def test_a_blank_secret_keeps_the_stored_one():
    channel = Channel(name="sms", kind="sms", backend=VALID[1][1], options=dict(VALID[1][2]))
    channel.full_clean()
    channel.save()
    channel.options = {**channel.options, "token": ""}
    channel.full_clean()
    assert channel.secrets == {"token": "sms-token"}
    channel.options = {**channel.options, "token": "rotated"}
    channel.full_clean()
    assert channel.secrets == {"token": "rotated"}


def test_a_webhook_secret_is_generated_once():
    channel = Channel(name="hook", kind="webhook", backend=VALID[4][1], options={"url": "https://hooks.example.com/"})
    channel.full_clean()
    channel.save()
    secret = channel.secrets["secret"]
    assert secret.startswith("whsec_")
    channel.full_clean()
    assert channel.secrets["secret"] == secret


def test_option_errors_name_the_option():
    for options, field, message in [
        ({"url": "https://hooks.example.com/", "colour": "red"}, "options", "colour"),
        ({"url": "https://10.0.0.1/x"}, "url", "private"),
    ]:
        channel = Channel(name="hook", kind="webhook", backend=VALID[4][1], options=options)
        with pytest.raises(ValidationError) as caught:
            channel.full_clean()
        assert message in " ".join(caught.value.message_dict[field])


def test_the_backend_must_send_the_channels_kind():
    channel = Channel(name="x", kind="sms", backend="oscar_journeys.channels.email.EmailChannel", options={"from_email": "a@example.com"})
    with pytest.raises(ValidationError) as caught:
        channel.full_clean()
    assert "backend" in caught.value.message_dict


def test_a_backend_not_in_the_setting_is_refused():
    channel = Channel(name="x", kind="sms", backend="oscar_journeys.channels.locmem.LocmemSmsChannel")
    with override_settings(OSCAR_JOURNEYS_CHANNEL_BACKENDS=["oscar_journeys.channels.sms.HttpSmsChannel"]):
        with pytest.raises(ValidationError) as caught:
            channel.full_clean()
    assert "OSCAR_JOURNEYS_CHANNEL_BACKENDS" in " ".join(caught.value.message_dict["backend"])


def test_a_saved_locmem_channel_sends_and_fails_as_told():
    locmem.reset()
    ok = Channel.objects.create(name="ok", kind="email", backend="oscar_journeys.channels.locmem.LocmemChannel")
    with ok.get_backend() as backend:
        backend.send(OutgoingMessage(to="ana@example.com", subject="Hi"))
    assert [m.to for m in locmem.outbox] == ["ana@example.com"]
    bad = Channel(name="bad", kind="email", backend="oscar_journeys.channels.locmem.LocmemChannel",
                  options={"fail_with": "permanent_suppress"})
    bad.full_clean()
    bad.save()
    from oscar_journeys.exceptions import ChannelPermanentError

    with pytest.raises(ChannelPermanentError) as caught:
        bad.get_backend().send(OutgoingMessage(to="gone@example.com"))
    assert caught.value.suppress is True
    locmem.reset()


def test_the_security_checks_run_with_deploy_only():
    with override_settings(OSCAR_JOURNEYS_ALLOW_PRIVATE_ADDRESSES=True):
        assert "oscar_journeys.W004" not in {m.id for m in run_checks()}
        assert "oscar_journeys.W004" in {m.id for m in run_checks(include_deployment_checks=True)}

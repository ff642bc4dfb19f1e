"""The channel admin: the backend chooser, the form built from the backend's options, secrets
that never come back, and the inbound webhook URL."""

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from oscar_journeys.channels import backend_choices
from oscar_journeys.models import Channel

pytestmark = pytest.mark.django_db

EMAIL = "oscar_journeys.channels.email.EmailChannel"
WEBHOOK = "oscar_journeys.channels.webhook.WebhookChannel"
TWILIO = "oscar_journeys.channels.sms.TwilioSmsChannel"
SECRET = "pa55-Very-Secret-Value"


def add_url(backend=None):
    url = reverse("admin:oscar_journeys_channel_add")
    return f"{url}?backend={backend}" if backend else url


def change_url(channel):
    return reverse("admin:oscar_journeys_channel_change", args=[channel.pk])


def email_post(**fields):
    data = {
        "name": "Newsletter",
        "backend": EMAIL,
        "enabled": "on",
        "option_from_email": "Shop <news@shop.example.com>",
        "option_reply_to": "",
        "option_email_backend": "",
        "option_host": "",
        "option_port": "",
        "option_username": "",
        "option_password": "",
        "option_timeout": "",
    }
    data.update(fields)
    return data


def texts(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_the_add_page_first_asks_for_the_backend(admin_client):
    page = admin_client.get(add_url())
    assert page.status_code == 200
    assert "choose its backend" in page.text
    for path in (EMAIL, WEBHOOK, TWILIO):
        assert f"?backend={path}" in page.text
    assert "SMS" in page.text and "Webhook" in page.text


def test_the_form_has_the_backend_options_and_secrets_as_password_inputs(admin_client):
    page = admin_client.get(add_url(EMAIL))
    form = page.context["adminform"].form
    assert {"option_from_email", "option_password", "option_host", "option_use_tls"} <= set(form.fields)
    assert 'name="option_password"' in page.text and 'type="password"' in page.text
    assert "leave empty to keep the current value" in page.text.lower()
    offered = [path for path, _label in form.fields["backend"].choices]
    assert EMAIL in offered and offered == [path for path, _label in backend_choices("email")]
    assert TWILIO not in offered and WEBHOOK not in offered  # only backends of the channel's type
    twilio = admin_client.get(add_url(TWILIO)).context["adminform"].form
    assert "option_auth_token" in twilio.fields and "option_from_email" not in twilio.fields


def test_secrets_never_appear_in_the_html_and_are_kept_when_left_empty(admin_client):
    response = admin_client.post(add_url(EMAIL), email_post(option_host="smtp.example.com", option_password=SECRET))
    assert response.status_code == 302, response.context["adminform"].form.errors
    channel = Channel.objects.get()
    assert channel.kind == "email" and channel.backend == EMAIL
    assert channel.secrets == {"password": SECRET}
    assert channel.options["host"] == "smtp.example.com" and "password" not in channel.options

    page = admin_client.get(change_url(channel))
    assert page.status_code == 200 and SECRET not in page.text
    assert page.context["adminform"].form["option_host"].value() == "smtp.example.com"

    # Saved again with the password left empty: the stored one stays.
    response = admin_client.post(change_url(channel), email_post(option_host="smtp2.example.com"))
    assert response.status_code == 302
    channel.refresh_from_db()
    assert channel.secrets == {"password": SECRET} and channel.options["host"] == "smtp2.example.com"

    # A new value replaces it.
    admin_client.post(change_url(channel), email_post(option_host="smtp2.example.com", option_password="other-one"))
    channel.refresh_from_db()
    assert channel.secrets == {"password": "other-one"}

    # Not even a form with errors echoes what was typed.
    response = admin_client.post(change_url(channel), email_post(option_from_email="not an address", option_password=SECRET))
    assert response.status_code == 200 and SECRET not in response.text
    assert "not an email address" in response.text
    channel.refresh_from_db()
    assert channel.secrets == {"password": "other-one"}
    assert SECRET not in admin_client.get(reverse("admin:oscar_journeys_channel_changelist")).text
    assert SECRET not in admin_client.get(reverse("admin:oscar_journeys_channel_history", args=[channel.pk])).text


def test_backend_validation_errors_land_on_their_fields(admin_client):
    response = admin_client.post(add_url(EMAIL), email_post(option_use_tls="on", option_use_ssl="on"))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "option_host" in errors and "option_use_ssl" in errors
    assert errors["option_use_ssl"] == ["Choose STARTTLS or SSL/TLS, not both."]
    response = admin_client.post(add_url(EMAIL), email_post(option_from_email=""))
    assert response.context["adminform"].form.errors["option_from_email"] == ["This field is required."]
    assert not Channel.objects.exists()


def test_a_backend_that_is_not_configured_is_refused(admin_client):
    response = admin_client.post(add_url(EMAIL), email_post(backend="os.system"))
    assert response.status_code == 200 and "backend" in response.context["adminform"].form.errors
    assert not Channel.objects.exists()


def test_a_generated_webhook_secret_is_shown_once(admin_client):
    data = {"name": "Hook", "backend": WEBHOOK, "enabled": "on", "option_url": "https://hooks.example.com/in",
            "option_secret": "", "option_extra_headers": "", "option_timeout": ""}  # fmt: skip
    response = admin_client.post(add_url(WEBHOOK), data, follow=True)
    channel = Channel.objects.get()
    secret = channel.secrets["secret"]
    assert secret.startswith("whsec_")
    assert any(secret in message for message in texts(response))
    page = admin_client.get(change_url(channel))
    assert secret not in page.text
    # Saving again keeps the secret and shows nothing.
    response = admin_client.post(change_url(channel), data, follow=True)
    channel.refresh_from_db()
    assert channel.secrets["secret"] == secret and not any(secret in m for m in texts(response))


def test_change_page_shows_the_inbound_webhook_url(admin_client):
    channel = Channel.objects.create(name="Texts", kind="sms", backend="oscar_journeys.channels.locmem.LocmemSmsChannel")
    page = admin_client.get(change_url(channel))
    kwargs = {"channel_id": channel.pk, "inbound_token": channel.inbound_token}
    path = reverse("oscar_journeys:channel-inbound", kwargs=kwargs)
    assert path in page.text
    assert page.context["adminform"].form.fields["backend"].choices[0][0].startswith("oscar_journeys.channels")


def test_send_a_test_message(admin_client):
    from oscar_journeys.channels import locmem

    locmem.reset()
    channel = Channel.objects.create(name="Mem", kind="email", backend="oscar_journeys.channels.locmem.LocmemChannel")
    url = reverse("admin:oscar_journeys_channel_changelist")
    form = admin_client.post(url, {"action": "send_test", "_selected_action": [channel.pk]})
    assert form.status_code == 200 and 'name="address"' in form.text and locmem.outbox == []
    done = admin_client.post(
        url, {"action": "send_test", "_selected_action": [channel.pk], "address": "Staff@Example.com"}, follow=True
    )
    assert [m.to for m in locmem.outbox] == ["staff@example.com"] and "Mem" in locmem.outbox[0].subject
    assert any("Sent a test message through Mem" in m for m in texts(done))

    channel.options = {"fail_with": "permanent"}
    channel.save()
    failed = admin_client.post(
        url, {"action": "send_test", "_selected_action": [channel.pk], "address": "staff@example.com"}, follow=True
    )
    assert any(m.startswith("The test failed") for m in texts(failed)) and len(locmem.outbox) == 1

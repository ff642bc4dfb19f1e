"""Cart abandonment end to end through Oscar's storefront: a shopper fills a basket and
leaves; the clock moves; one round of the loop (journeys_run) sends one email with the
basket's lines and a working restore link."""

import datetime as dt
import zoneinfo
from urllib.parse import urlsplit

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from oscar_journeys.channels import locmem
from oscar_journeys.models import Customer, Decision, Enrollment, Message
from oscar_journeys.models import campaigns as c
from oscar_journeys.services.consent import consent_set
from oscar_journeys.services.delivery import messages_send
from oscar_journeys.services.loop import journeys_run
from oscar_journeys.tasks import messages_send as messages_send_task
from tests import storefront

from .journeys_setup import BACKENDS, make_campaign, make_channel

TEXT = (
    "You left these behind:\n"
    "{% for line in basket.lines %}- {{ line.name }} x {{ line.quantity }} at {{ line.price }}\n{% endfor %}"
    "Total {{ basket.total }}\nBack to your basket: {{ basket.restore_url }}\nUnsubscribe: {{ unsubscribe_url }}\n"
)
HTML = (
    "<ul>{% for line in basket.lines %}<li>{{ line.name }} x {{ line.quantity }}</li>{% endfor %}</ul>"
    '<a href="{{ basket.restore_url }}">Back to your basket</a> <a href="{{ unsubscribe_url }}">Unsubscribe</a>'
)


@pytest.fixture(autouse=True)
def _settings():
    locmem.reset()
    with override_settings(
        OSCAR_JOURNEYS_CHANNEL_BACKENDS=BACKENDS,
        OSCAR_JOURNEYS_GLOBAL_CONTROL_PERCENT=0,
        OSCAR_JOURNEYS_SITE_URL="http://testserver",
    ):
        yield
    locmem.reset()


@pytest.fixture
def email(db):
    return make_channel("Email")


@pytest.fixture
def cart_campaign(email):
    campaign = make_campaign("Cart abandoned", channels=[email], trigger=c.CART_ABANDONED, steps=((1, "hours"),),
                             holdout_percent=0, templates=False)
    step = campaign.steps.get()
    step.templates.create(channel=email, subject="You left something in your basket", body_text=TEXT, body_html=HTML)
    return campaign


@pytest.fixture
def shopper(shop, product):
    """A registered, logged-in shopper who put the product in their basket and left."""
    storefront.register(shop, "ana@example.com")
    storefront.add_to_basket(shop, product, quantity=2)
    return shop


def customer():
    return Customer.objects.get(user__email="ana@example.com")


def path(url):
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def test_abandoned_basket_gets_exactly_one_email_with_its_lines_and_a_working_restore_link(
    cart_campaign, shopper, product
):
    left_at = timezone.now()
    assert journeys_run(now=left_at + dt.timedelta(minutes=30))["messages"] == 0  # not yet: 1 hour

    counts = journeys_run(now=left_at + dt.timedelta(hours=2))

    assert (counts["enrolled"], counts["messages"], counts["sent"]) == (1, 1, 1)
    assert len(locmem.outbox) == 1
    mail = locmem.outbox[0]
    assert mail.to == "ana@example.com"
    assert mail.subject == "You left something in your basket"
    assert "- Trail runner x 2 at 45.00" in mail.text and "Total 90.00" in mail.text
    assert "<li>Trail runner x 2</li>" in mail.html
    assert mail.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    message = Message.objects.get()
    assert message.status == "sent" and message.customer == customer()
    restore = next(url for url in message.links if "/r/" in url)

    # The restore link: the shopper, still logged in, lands on their basket.
    page = shopper.get(path(restore), follow=True)
    assert page.status_code == 200 and product.title in page.content.decode()
    assert page.redirect_chain[-1][0].endswith("/basket/")
    # Through the tracked link in the email as well (click redirect, then restore).
    tracked = next(link for link in mail.html.split('"') if "/c/" in link)
    page = shopper.get(path(tracked), follow=True)
    assert product.title in page.content.decode()
    # On another device: log in first, then back to the basket with the product.
    client = Client()
    response = client.get(path(restore))
    assert response.status_code == 302 and "login" in response["Location"]
    storefront.log_in(client, "ana@example.com")
    assert product.title in client.get(path(restore), follow=True).content.decode()

    # Another round later sends nothing more.
    journeys_run(now=left_at + dt.timedelta(hours=3))
    assert len(locmem.outbox) == 1


def test_ordering_before_the_delay_sends_nothing(cart_campaign, shopper):
    left_at = timezone.now()
    storefront.user_checkout(shopper)  # within the hour

    journeys_run(now=left_at + dt.timedelta(hours=2))

    assert locmem.outbox == [] and not Message.objects.exists()


@pytest.fixture
def two_reminders(email):
    campaign = make_campaign("Two reminders", channels=[email], trigger=c.CART_ABANDONED,
                             steps=((1, "hours"), (1, "days")), templates=False)
    for step in campaign.steps.all():
        step.templates.create(channel=email, subject=f"Reminder {step.position}", body_text=TEXT)
    return campaign


def test_ordering_after_enrollment_exits_before_the_reminder(two_reminders, shopper):
    left_at = timezone.now()
    counts = journeys_run(now=left_at + dt.timedelta(hours=2))
    assert [m.subject for m in locmem.outbox] == ["Reminder 1"], counts
    storefront.user_checkout(shopper)

    journeys_run(now=left_at + dt.timedelta(days=2))

    assert len(locmem.outbox) == 1
    enrollment = Enrollment.objects.get()
    assert (enrollment.status, enrollment.exit_reason) == ("exited", "ordered")


def test_an_unsubscribed_customer_gets_nothing(cart_campaign, shopper):
    consent_set(customer=customer(), kind="email", granted=False, source="preferences")
    left_at = timezone.now()

    counts = journeys_run(now=left_at + dt.timedelta(hours=2))

    assert locmem.outbox == [] and counts["messages"] == 0
    assert Decision.objects.get().reason == "no_consent"


def test_running_the_send_twice_sends_once(cart_campaign, shopper):
    left_at = timezone.now()
    journeys_run(now=left_at + dt.timedelta(hours=2))
    journeys_run(now=left_at + dt.timedelta(hours=2))
    message = Message.objects.get()
    messages_send(message_ids=[message.pk], now=left_at + dt.timedelta(hours=2))
    messages_send_task.apply(args=([message.pk],))  # the Celery task, as a redelivery would run it

    assert len(locmem.outbox) == 1


def test_quiet_hours_defer_the_email_to_the_morning(cart_campaign, email, shopper):
    email.quiet_hours_start, email.quiet_hours_end = dt.time(22), dt.time(7)
    email.save()
    madrid = zoneinfo.ZoneInfo("Europe/Madrid")
    Customer.objects.filter(pk=customer().pk).update(time_zone="Europe/Madrid")
    left_at = timezone.now()
    # The first 23:00 in Madrid at least an hour after the shopper left.
    night = (left_at + dt.timedelta(hours=1)).astimezone(madrid).replace(hour=23, minute=0, second=0, microsecond=0)
    if night < left_at + dt.timedelta(hours=1):
        night += dt.timedelta(days=1)
    morning = (night + dt.timedelta(hours=8)).replace(hour=7)

    at_night = journeys_run(now=night)
    assert (at_night["enrolled"], at_night["deferred"], at_night["messages"]) == (1, 1, 0)
    journeys_run(now=morning - dt.timedelta(minutes=1))
    assert locmem.outbox == []

    journeys_run(now=morning)

    assert len(locmem.outbox) == 1
    assert Message.objects.get().sent_at == morning

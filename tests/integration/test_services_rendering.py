"""Rendering outbox messages: the context (basket, order, products, recommendations), link
tracking, the open pixel, RFC 8058 headers, batching, and the admin preview."""

import uuid
from unittest import mock
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
from django.apps import apps
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from oscar.core.loading import get_class
from oscar.test.factories import create_order, create_product, create_product_image

from oscar_journeys import tokens
from oscar_journeys.models import (
    Campaign,
    CampaignStep,
    Channel,
    CustomerIdentifier,
    Decision,
    Enrollment,
    Event,
    Message,
    MessageTemplate,
)
from oscar_journeys.services.rendering import MessageRenderer, render_preview
from oscar_journeys.services.recommendations import recommendation_ids, recommendations_for

SITE = "https://shop.example.com"
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("site_url")]

HTML = """<html><body>
<p>Hi {{ customer.first_name }},</p>
{% for line in basket.lines %}<div class="line"><img src="{{ line.image_url }}">
<a href="{{ line.url }}">{{ line.name }}</a> x{{ line.quantity }} {{ line.price }} {{ line.currency }}</div>{% endfor %}
<p>Total {{ basket.total }}</p>
<a href='{{ basket.restore_url }}'>Back to your basket</a>
<a href="mailto:help@example.com">Help</a> <a href="{{ preferences_url }}">Preferences</a>
<a href="{{ unsubscribe_url }}">Unsubscribe</a> {{ shop.postal_address }}
</body></html>"""
TEXT = "Hi {{ customer.first_name }}, see {{ basket.restore_url }}.\nUnsubscribe: {{ unsubscribe_url }}"


@pytest.fixture
def site_url(settings):
    settings.OSCAR_JOURNEYS_SITE_URL = SITE
    settings.OSCAR_JOURNEYS_SHOP_POSTAL_ADDRESS = "1 Example Street"


# --- factories (also used by tests/functional/test_public_views.py) -----------------------------


def make_template(kind="email", name=None, **fields):
    channel = Channel.objects.create(
        name=name or f"{kind}-{uuid.uuid4().hex[:6]}", kind=kind, backend="oscar_journeys.channels.locmem.LocmemChannel"
    )
    campaign = Campaign.objects.create(name=f"Cart {uuid.uuid4().hex[:6]}", trigger="cart_abandoned")
    step = CampaignStep.objects.create(campaign=campaign, position=1, delay_value=1)
    return MessageTemplate.objects.create(step=step, channel=channel, **fields)


def make_message(customer, template, context=None, recipient=None):
    now = timezone.now()
    campaign, channel = template.step.campaign, template.channel
    enrollment = Enrollment.objects.create(
        campaign=campaign, customer=customer, trigger_key=uuid.uuid4().hex, triggered_at=now, context=context or {}
    )
    decision = Decision.objects.create(
        customer=customer, campaign=campaign, enrollment=enrollment, step=1, decided_at=now, outcome="send", channel=channel
    )
    message = Message.objects.create(
        decision=decision,
        customer=customer,
        campaign=campaign,
        enrollment=enrollment,
        step=1,
        channel=channel,
        template=template,
        idempotency_key=uuid.uuid4().hex,
        recipient=recipient if recipient is not None else customer.email,
        send_after=now,
    )
    return Message.objects.select_related("customer", "channel", "template", "campaign", "enrollment").get(pk=message.pk)


def make_basket(*lines, owner=None):
    Basket = apps.get_model("basket", "Basket")
    basket = Basket.objects.create(owner=owner)
    basket.strategy = get_class("partner.strategy", "Selector")().strategy()
    for product, quantity in lines:
        basket.add_product(product, quantity)
    return basket


@pytest.fixture
def shoe(product):
    create_product_image(product=product, original="images/products/trail.jpg")
    return product


@pytest.fixture
def sock(category):
    sock = create_product(title="Wool sock", price="5.50", num_in_stock=10, upc="WS-1")
    apps.get_model("catalogue", "ProductCategory").objects.create(product=sock, category=category)
    return sock


# --- tests --------------------------------------------------------------------------------------


def test_email_has_basket_lines_images_prices_and_tracked_links(make_customer, shoe, sock):
    customer = make_customer(email="ana@example.com", first_name="Ana")
    basket = make_basket((shoe, 2), (sock, 1))
    template = make_template(subject="  {{ customer.first_name }},\n your basket ", body_text=TEXT, body_html=HTML)
    message = make_message(customer, template, {"basket_id": basket.pk})

    outgoing, links = MessageRenderer().render(message)

    assert outgoing.to == "ana@example.com"
    assert outgoing.subject == "Ana, your basket"
    assert outgoing.idempotency_key == message.idempotency_key
    assert outgoing.metadata == {"message_id": message.pk, "campaign_id": message.campaign_id, "customer_id": customer.pk, "step": 1}
    html = outgoing.html
    assert "Trail runner</a> x2 45.00 GBP" in html
    assert "Wool sock</a> x1 5.50 GBP" in html
    assert "Total 95.50" in html
    assert f'<img src="{SITE}/media/images/products/trail.jpg">' in html
    assert "1 Example Street" in html
    # Product and restore links are tracked; mailto, preferences and unsubscribe are not.
    product_url = SITE + shoe.get_absolute_url()
    assert product_url in links and product_url not in html
    restore = next(link for link in links if "/journeys/r/" in link)
    assert tokens.read_token(tokens.RESTORE, restore.rstrip("/").rsplit("/", 1)[1]) == {"b": basket.pk, "c": customer.pk}
    assert 'href="mailto:help@example.com"' in html
    assert outgoing.headers["List-Unsubscribe"] == f"<{_unsubscribe_url(html)}>"
    assert outgoing.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    for index, link in enumerate(links):
        click = SITE + reverse(
            "oscar_journeys:message-click", kwargs={"token": tokens.make_token(tokens.CLICK, {"m": message.pk, "l": index})}
        )
        assert click in html or click in outgoing.text
    assert html.count("/journeys/c/") == 3  # two products and the restore link (in single quotes)
    assert "href='https://shop.example.com/journeys/c/" in html
    # The open pixel sits before </body>.
    assert f'<img src="{SITE}/journeys/o/' in html
    assert html.index("/journeys/o/") < html.index("</body>")


def _unsubscribe_url(html):
    start = html.index(f"{SITE}/journeys/u/")
    return html[start : html.index('"', start)]


def test_unsubscribe_token_names_customer_kind_and_message(make_customer):
    customer = make_customer()
    message = make_message(customer, make_template(subject="x", body_text="{{ unsubscribe_url }}"))
    outgoing, _links = MessageRenderer().render(message)
    url = outgoing.headers["List-Unsubscribe"].strip("<>")
    token = urlsplit(url).path.rstrip("/").rsplit("/", 1)[1]
    assert tokens.read_token(tokens.UNSUBSCRIBE, token) == {"c": customer.pk, "k": "email", "m": message.pk}
    assert url in outgoing.text  # not rewritten into a click URL


def test_bare_urls_in_text_are_tracked_keeping_punctuation(make_customer):
    customer = make_customer()
    template = make_template(
        subject="x",
        body_text="See https://example.com/a?b=1&c=2. Or (https://example.com/p_(x)) and https://example.com/a?b=1&c=2!\n"
        "{{ unsubscribe_url }} {{ preferences_url }} ftp://example.com/file",
    )
    outgoing, links = MessageRenderer().render(make_message(customer, template))
    assert links == ["https://example.com/a?b=1&c=2", "https://example.com/p_(x)"]
    text = outgoing.text
    assert text.startswith(f"See {SITE}/journeys/c/")
    assert "/. Or (" in text and text.count("/journeys/c/") == 3
    assert "/!\n" in text and "ftp://example.com/file" in text
    assert text.count(f"{SITE}/journeys/u/") == 1 and text.count(f"{SITE}/journeys/p/") == 1
    assert outgoing.html == ""  # no HTML body, no pixel


def test_sms_is_rendered_short_without_tracking_or_headers(make_customer, shoe):
    customer = make_customer(phone="+447700900123", first_name="Ana")
    basket = make_basket((shoe, 1))
    template = make_template(kind="sms", short_text=" {{ customer.first_name }}: {{ basket.lines.0.name }} {{ basket.restore_url }} ")
    outgoing, links = MessageRenderer().render(make_message(customer, template, {"basket_id": basket.pk}, recipient=customer.phone))
    assert outgoing.to == "+447700900123"
    assert outgoing.short_text.startswith(f"Ana: Trail runner {SITE}/journeys/r/")
    assert links == [] and outgoing.headers == {}


def test_webhook_gets_the_context_as_json(make_customer, shoe):
    customer = make_customer(first_name="Ana")
    basket = make_basket((shoe, 3))
    template = make_template(kind="webhook", short_text="{{ basket.total }}")
    outgoing, _ = MessageRenderer().render(make_message(customer, template, {"basket_id": basket.pk}, recipient=str(customer.pk)))
    context = outgoing.metadata["context"]
    assert context["customer"]["first_name"] == "Ana"
    assert context["basket"]["lines"][0]["quantity"] == 3 and context["basket"]["total"] == "135.00"


def test_order_context_and_language(make_customer, shoe):
    customer = make_customer(language="es", first_name="Ana")
    order = create_order(number="100042", basket=make_basket((shoe, 1)))
    template = make_template(
        subject="{{ order.number }}",
        body_text="{% for line in order.lines %}{{ line.name }} {{ line.url }} {{ line.total }}{% endfor %} "
        "{{ order.total }} {{ order.currency }} {{ order.date|date:'Y' }} {{ unsubscribe_url }}",
    )
    renderer = MessageRenderer()
    outgoing, links = renderer.render(make_message(customer, template, {"order_number": order.number, "order_id": order.pk}))
    assert outgoing.subject == "100042"
    assert f"Trail runner {SITE}/journeys/c/" in outgoing.text
    assert links == [SITE + "/es" + shoe.get_absolute_url()[len("/en-gb"):]]  # the customer's language
    # Numbers are formatted for the customer's language.
    assert f"45,00 45,00 GBP {order.date_placed.year}" in outgoing.text


def test_prefetch_renders_a_batch_without_further_queries(make_customer, shoe, sock):
    template = make_template(subject="{{ customer.first_name }}", body_html=HTML, body_text=TEXT)
    messages = []
    for n in range(6):
        basket = make_basket((shoe, 1 + n), (sock, 1))
        messages.append(make_message(make_customer(first_name=f"C{n}"), template, {"basket_id": basket.pk}))
    renderer = MessageRenderer()
    with CaptureQueriesContext(connection) as prefetch:
        renderer.prefetch(messages)
    with CaptureQueriesContext(connection) as rendering:
        rendered = [renderer.render(message) for message in messages]
    assert len(prefetch) <= 8
    assert len(rendering) == 0
    assert "Trail runner</a> x6" in rendered[5][0].html
    # Without prefetch it still works (a few queries more).
    alone, _links = MessageRenderer().render(messages[2])
    assert alone.html.replace("\n", "").count('class="line"') == 2


def test_a_missing_basket_or_image_renders_empty_parts(make_customer, sock):
    customer = make_customer()
    template = make_template(
        subject="x",
        body_html="[{% for line in basket.lines %}{{ line.image_url }}{% endfor %}]{{ basket.total|default:'none' }}{{ unsubscribe_url }}",
    )
    outgoing, _ = MessageRenderer().render(make_message(customer, template, {"basket_id": 987654}))
    assert "[]none" in outgoing.html
    basket = make_basket((sock, 1))
    outgoing, _ = MessageRenderer().render(make_message(customer, template, {"basket_id": basket.pk}))
    assert f"[{SITE}/media/image_not_found.jpg]" in outgoing.html


def test_restore_link_in_the_email_brings_the_basket_back(client, make_customer, shoe):
    customer = make_customer(first_name="Ana")
    basket = make_basket((shoe, 2))
    template = make_template(subject="x", body_text="{{ basket.restore_url }} {{ unsubscribe_url }}")
    message = make_message(customer, template, {"basket_id": basket.pk})
    _outgoing, links = MessageRenderer().render(message)
    restore = links[0]
    assert restore.startswith(SITE + "/journeys/r/")
    response = client.get(urlsplit(restore).path)
    assert response.status_code == 302 and response["Location"] == reverse("basket:summary")
    page = client.get(response["Location"])
    assert page.status_code == 200
    assert page.context["basket"].pk == basket.pk
    assert "Trail runner" in page.content.decode()


def test_preview_uses_the_customers_latest_basket_and_writes_nothing(make_customer, shoe):
    customer = make_customer(first_name="Ana")
    basket = make_basket((shoe, 1))
    CustomerIdentifier.objects.create(customer=customer, kind="basket", value=str(basket.pk))
    template = make_template(
        subject="Hi {{ customer.first_name }}",
        body_html='<a href="{{ basket.lines.0.url }}">{{ basket.lines.0.name }}</a>'
        '<a href="{{ basket.restore_url }}">r</a><a href="{{ unsubscribe_url }}">u</a>',
    )
    counts = (Message.objects.count(), Event.objects.count())
    outgoing = render_preview(template=template, customer=customer)
    assert outgoing.subject == "Hi Ana" and outgoing.to == customer.email
    assert f'href="{SITE}{shoe.get_absolute_url()}">Trail runner</a>' in outgoing.html
    assert f"{SITE}/journeys/r/preview/" in outgoing.html and f"{SITE}/journeys/u/preview/" in outgoing.html
    assert "/journeys/o/" not in outgoing.html and "/journeys/c/" not in outgoing.html
    assert (Message.objects.count(), Event.objects.count()) == counts


# --- recommendations ------------------------------------------------------------------------------


def test_recommendations_prefer_the_shops_choice_then_bought_together_then_category(shoe, sock, category):
    ProductRecommendation = apps.get_model("catalogue", "ProductRecommendation")
    ProductCategory = apps.get_model("catalogue", "ProductCategory")
    chosen = create_product(title="Chosen", price="1", num_in_stock=5)
    together = create_product(title="Together", price="2", num_in_stock=5)
    hidden = create_product(title="Hidden", price="2", num_in_stock=5, is_public=False)
    ProductRecommendation.objects.create(primary=shoe, recommendation=chosen, ranking=5)
    ProductRecommendation.objects.create(primary=shoe, recommendation=hidden, ranking=9)
    for number in ("1", "2"):
        create_order(number=f"R{number}", basket=make_basket((shoe, 1), (together, 1)))
    cap = create_product(title="Cap", price="3", num_in_stock=5)
    ProductCategory.objects.create(product=cap, category=category)

    ids = recommendation_ids(product_ids=[shoe.pk], limit=4)
    assert ids[:2] == [chosen.pk, together.pk]
    assert set(ids[2:]) == {sock.pk, cap.pk}
    assert hidden.pk not in ids and shoe.pk not in ids
    assert recommendation_ids(product_ids=[shoe.pk], exclude_ids=[chosen.pk], limit=2) == [together.pk, ids[2]]
    cards = recommendations_for(product_ids=[shoe.pk], limit=1)
    assert cards == [
        {
            "id": chosen.pk,
            "name": "Chosen",
            "url": SITE + chosen.get_absolute_url(),
            "image_url": f"{SITE}/media/image_not_found.jpg",
            "price": Decimal("1.00"),
            "currency": "GBP",
        }
    ]


def test_recommendations_in_a_template(make_customer, shoe, sock):
    customer = make_customer()
    template = make_template(
        subject="x",
        body_text="{% for r in recommendations %}[{{ r.name }} {{ r.price }}]{% endfor %}{{ unsubscribe_url }}",
    )
    outgoing, _ = MessageRenderer().render(make_message(customer, template, {"product_ids": [shoe.pk]}))
    assert "[Wool sock 5.50]" in outgoing.text and "Trail runner" not in outgoing.text


def test_a_message_whose_template_was_deleted_cannot_render(make_customer):
    from oscar_journeys.exceptions import CampaignError

    message = make_message(make_customer(), make_template(subject="x", body_text="{{ unsubscribe_url }}"))
    message.template = None
    with pytest.raises(CampaignError, match="no template"):
        MessageRenderer().render(message)


def test_a_link_in_both_bodies_gets_one_index_and_one_signed_click_url(make_customer):
    template = make_template(
        subject="x",
        body_text="https://example.com/x {{ unsubscribe_url }} {{ shop.postal_address }}",
        body_html='<a href="https://example.com/x">x</a> <a href="https://example.com/y">y</a> <a href="https://example.com/x">'
        'again</a> <a href="{{ unsubscribe_url }}">bye</a> {{ shop.postal_address }}',
    )
    message = make_message(make_customer(), template)
    with mock.patch.object(tokens, "make_token", wraps=tokens.make_token) as made:
        outgoing, links = MessageRenderer().render(message)
    assert links == ["https://example.com/x", "https://example.com/y"]
    assert [call.args[0] for call in made.call_args_list].count(tokens.CLICK) == 2
    first = outgoing.text.split()[0]
    assert first.startswith(f"{SITE}/journeys/c/") and outgoing.html.count(first) == 2
    token = urlsplit(first).path.rstrip("/").rsplit("/", 1)[1]
    assert tokens.read_token(tokens.CLICK, token) == {"m": message.pk, "l": 0}


def test_the_renderer_module_still_exports_its_public_names():
    from oscar_journeys.services import render_context, rendering, tracking

    assert issubclass(rendering.MessageRenderer, render_context.ContextBuilder)
    assert rendering.site_url is tracking.site_url and rendering.absolute_url is tracking.absolute_url
    assert rendering.LAZY_PARTS == ("basket", "order", "products", "recommendations")
    assert rendering.PREVIEW_TOKEN == "preview" and callable(rendering.render_preview)

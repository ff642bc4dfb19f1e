"""The starter set: an email channel on the shop's own email settings, frequency caps, an
exclusion rule, four campaigns (cart abandonment, after a purchase, birthday, win-back)
with their email templates, and a sample self-optimizing journey, ready to edit in the admin. ``manage.py journeys_setup_defaults``
calls ``setup_defaults``; docs/admin.md describes the set.

Idempotent: it fills gaps and never changes what exists.
- the channel: any channel with the email backend counts (else "Email" is created);
- the frequency caps: skipped when any email (or all-channel) cap exists;
- the exclusion rule: skipped when a rule on ``order_line_returned`` exists;
- a campaign: skipped when a campaign with the same trigger exists (in any language), or
  with the same name;
- the sample journey (self-optimizing, with its three campaigns): skipped when the shop has
  a journey.

Every text is translated in the active language (the command activates the shop's
LANGUAGE_CODE or ``--language``) when the set is created, and written into the records:
the templates are then the shop's to edit. The template sources are assembled from
translated sentences and a fixed layout, so translators never see template syntax beyond
a ``%(name)s`` placeholder."""

import datetime as dt
import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.html import escape
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .ml import schema
from .models import (
    Campaign,
    CampaignChannel,
    CampaignStep,
    Channel,
    ExclusionRule,
    FollowUp,
    FrequencyCap,
    Journey,
    MessageTemplate,
)
from .models import campaigns as c
from .models.channels import EMAIL

logger = logging.getLogger(__name__)

EMAIL_BACKEND = "oscar_journeys.channels.email.EmailChannel"

# At most one marketing email a day and three a week per customer (Klaviyo's Smart Sending
# waits 16 hours between emails; three a week keeps a cart reminder, a follow-up and one
# more from stacking up on the same days).
FREQUENCY_CAPS = ((EMAIL, 1, 1), (EMAIL, 3, 7))

RETURN_RULE = {
    "name": gettext_lazy("No promotions within 14 days of a return"),
    "event_type": schema.ORDER_LINE_RETURNED,
    "within_days": 14,
}

# --- the texts: sentences (translated) in a fixed layout ----------------------------------

NAME, SHOP, NUMBER = "{{ customer.first_name }}", "{{ shop.name }}", "{{ order.number }}"


def _greeting():
    return "{% if customer.first_name %}" + _("Hi %(name)s,") % {"name": NAME} + "{% else %}" + _("Hello,") + "{% endif %}"


def _text_footer():
    return "\n".join(
        [
            "--",
            SHOP,
            "{{ shop.postal_address }}",
            _("You receive this email because you are a customer of %(shop)s.") % {"shop": SHOP},
            _("Unsubscribe: %(url)s") % {"url": "{{ unsubscribe_url }}"},
            _("Your email preferences: %(url)s") % {"url": "{{ preferences_url }}"},
        ]
    )


def _html_footer():
    return (
        '<p style="font-size:12px;color:#777;margin-top:32px">'
        + SHOP + "<br>{{ shop.postal_address }}<br>"
        + escape(_("You receive this email because you are a customer of %(shop)s.") % {"shop": SHOP})
        + '<br><a href="{{ unsubscribe_url }}">' + escape(_("Unsubscribe")) + "</a> · "
        + '<a href="{{ preferences_url }}">' + escape(_("Email preferences")) + "</a></p>"
    )  # fmt: skip


def _html(*paragraphs):
    body = "\n".join(paragraphs)
    return (
        '<!DOCTYPE html>\n<html><body style="font-family:Arial,sans-serif;color:#222;max-width:600px;margin:0 auto">\n'
        f"<p>{escape(_greeting())}</p>\n{body}\n{_html_footer()}\n</body></html>"
    )


def _p(text):
    return f"<p>{escape(text)}</p>"


def _button(url, label):
    return (
        f'<p><a href="{url}" style="background:#222;color:#fff;padding:10px 18px;text-decoration:none;'
        f'border-radius:4px;display:inline-block">{escape(label)}</a></p>'
    )


def _text(*paragraphs):
    return "\n\n".join([_greeting(), *paragraphs, _text_footer()])


BASKET_TEXT = (
    "{% for line in basket.lines %}- {{ line.quantity }} × {{ line.name }}: {{ line.price }} {{ line.currency }}\n"
    "{% endfor %}"
)
BASKET_HTML = (
    '<table style="border-collapse:collapse;width:100%">{% for line in basket.lines %}<tr>'
    '<td style="padding:6px">{% if line.image_url %}<img src="{{ line.image_url }}" alt="" width="64">{% endif %}</td>'
    '<td style="padding:6px"><a href="{{ line.url }}">{{ line.name }}</a></td>'
    '<td style="padding:6px">× {{ line.quantity }}</td>'
    '<td style="padding:6px;text-align:right">{{ line.price }} {{ line.currency }}</td></tr>{% endfor %}</table>'
)


def _recommendations_text():
    return (
        "{% if recommendations %}" + _("You might also like:") + "\n"
        "{% for product in recommendations %}- {{ product.name }}: {{ product.url }}\n{% endfor %}{% endif %}"
    )


def _recommendations_html():
    return (
        "{% if recommendations %}" + _p(_("You might also like:")) + '<table style="width:100%"><tr>'
        '{% for product in recommendations %}<td style="padding:6px;vertical-align:top;text-align:center">'
        '<a href="{{ product.url }}">{% if product.image_url %}<img src="{{ product.image_url }}" alt="" width="120"><br>'
        "{% endif %}{{ product.name }}</a>{% if product.price %}<br>{{ product.price }}{% endif %}</td>"
        "{% endfor %}</tr></table>{% endif %}"
    )


def cart_reminder(first):
    if first:
        subject = _("You left something in your basket")
        intro = _("You left these in your basket at %(shop)s:") % {"shop": SHOP}
        action = _("Complete your order")
    else:
        subject = _("Your basket is still waiting for you")
        intro = _("Your basket is still saved, but we cannot keep the items for you for ever:")
        action = _("Return to your basket")
    return {
        "subject": subject,
        "body_text": _text(intro, BASKET_TEXT + "\n" + action + ": {{ basket.restore_url }}"),
        "body_html": _html(_p(intro), BASKET_HTML, _button("{{ basket.restore_url }}", action)),
    }


def thanks_with_recommendations():
    thanks = _("Thank you for your order %(number)s. We hope you enjoy it.") % {"number": NUMBER}
    return {
        "subject": _("Thank you for your order"),
        "body_text": _text(thanks, _recommendations_text()),
        "body_html": _html(_p(thanks), _recommendations_html()),
    }


def review_request():
    ask = _(
        "Your order %(number)s arrived a little while ago. Would you tell other customers what you "
        "think? A short review helps them choose."
    ) % {"number": NUMBER}
    lines_text = "{% for line in order.lines %}- {{ line.name }}: {{ line.url }}\n{% endfor %}"
    lines_html = "<ul>{% for line in order.lines %}<li><a href=\"{{ line.url }}\">{{ line.name }}</a></li>{% endfor %}</ul>"
    return {
        "subject": _("How do you like your order?"),
        "body_text": _text(ask, lines_text),
        "body_html": _html(_p(ask), lines_html),
    }


def birthday_wishes():
    wish = _("Everyone at %(shop)s wishes you a very happy birthday!") % {"shop": SHOP}
    return {
        "subject": "{% if customer.first_name %}" + _("Happy birthday, %(name)s!") % {"name": NAME}
        + "{% else %}" + _("Happy birthday!") + "{% endif %}",
        "body_text": _text(wish, _recommendations_text(), _("Visit the shop: %(url)s") % {"url": "{{ shop.url }}"}),
        "body_html": _html(_p(wish), _recommendations_html(), _button("{{ shop.url }}", _("Visit the shop"))),
    }  # fmt: skip


def win_back():
    miss = _("It has been a while since we last saw you at %(shop)s. Here is what we think you will like:") % {
        "shop": SHOP
    }
    return {
        "subject": _("We miss you"),
        "body_text": _text(miss, _recommendations_text(), _("Visit the shop: %(url)s") % {"url": "{{ shop.url }}"}),
        "body_html": _html(_p(miss), _recommendations_html(), _button("{{ shop.url }}", _("Visit the shop"))),
    }


def cross_sell():
    intro = _("Thank you for shopping at %(shop)s. Customers who bought what you chose also liked these:") % {
        "shop": SHOP
    }
    return {
        "subject": _("Something new to go with your order"),
        "body_text": _text(intro, _recommendations_text(), _("Visit the shop: %(url)s") % {"url": "{{ shop.url }}"}),
        "body_html": _html(_p(intro), _recommendations_html(), _button("{{ shop.url }}", _("Visit the shop"))),
    }


def collection_coming():
    intro = _("The next collection of what you bought is coming soon. Here is a first look:")
    return {
        "subject": _("A first look at the next collection"),
        "body_text": _text(intro, _recommendations_text()),
        "body_html": _html(_p(intro), _recommendations_html()),
    }


def collection_out():
    intro = _("The new collection is out, and you are among the first to know:")
    return {
        "subject": _("The new collection is out"),
        "body_text": _text(intro, _recommendations_text(), _("Visit the shop: %(url)s") % {"url": "{{ shop.url }}"}),
        "body_html": _html(_p(intro), _recommendations_html(), _button("{{ shop.url }}", _("See the collection"))),
    }


NINE, EIGHT_PM = dt.time(9), dt.time(20)  # the customer's local time

# --- the campaigns, as data ----------------------------------------------------------------
# Each: trigger, name, description, the campaign's own fields, and its steps as
# (delay value, delay unit, function giving the email template's fields).

CAMPAIGNS = (
    {
        "trigger": c.CART_ABANDONED,
        "name": gettext_lazy("Cart abandonment"),
        "description": gettext_lazy("Two reminders of a basket left behind: one hour, then a day after."),
        "fields": {"min_basket_value": 0, "priority": 80, "reentry_days": 3},
        "steps": ((1, c.HOURS, lambda: cart_reminder(True)), (24, c.HOURS, lambda: cart_reminder(False))),
    },
    {
        "trigger": c.POST_PURCHASE,
        "name": gettext_lazy("After a purchase"),
        "description": gettext_lazy("Thanks and recommendations 3 days after an order, a review request after 14."),
        "fields": {"priority": 60, "reentry_days": 7, "send_window_start": NINE, "send_window_end": EIGHT_PM},
        "steps": ((3, c.DAYS, thanks_with_recommendations), (14, c.DAYS, review_request)),
    },
    {
        "trigger": c.BIRTHDAY,
        "name": gettext_lazy("Birthday"),
        "description": gettext_lazy("Best wishes on the customer's birthday."),
        "fields": {"days_before_birthday": 0, "priority": 50, "reentry_days": 300,
                   "send_window_start": NINE, "send_window_end": EIGHT_PM},
        "steps": ((0, c.HOURS, birthday_wishes),),
    },  # fmt: skip
    {
        "trigger": c.WIN_BACK,
        "name": gettext_lazy("Win-back"),
        "description": gettext_lazy("A note to customers who have not ordered for 90 days."),
        "fields": {"days_without_order": 90, "min_past_orders": 1, "priority": 40, "reentry_days": 90,
                   "send_window_start": NINE, "send_window_end": EIGHT_PM},
        "steps": ((0, c.HOURS, win_back),),
    },  # fmt: skip
)


# The sample journey (docs/journeys.md): after a purchase, a cross-sell to a new category, a
# series leading to the next collection of the category just bought, the birthday offer, or
# nothing; self-optimizing, so each customer gets the option worth most to them.
JOURNEY = {
    "name": gettext_lazy("After a purchase: what next?"),
    "description": gettext_lazy(
        "A cross-sell to a new category, a series leading to the next collection, the birthday wishes, "
        "or nothing: the policy learns which is worth most to each customer."
    ),
    "campaigns": (
        {
            "trigger": c.POST_PURCHASE,
            "name": gettext_lazy("Cross-sell: a new category"),
            "description": gettext_lazy("A week after an order, products of categories the customer has not bought."),
            "fields": {"priority": 30, "reentry_days": 7, "send_window_start": NINE, "send_window_end": EIGHT_PM},
            "steps": ((7, c.DAYS, cross_sell),),
        },
        {
            "trigger": c.POST_PURCHASE,
            "name": gettext_lazy("Next collection: a first look"),
            "description": gettext_lazy("Ten days after an order, a first look at the next collection of its category."),
            "fields": {"priority": 40, "reentry_days": 7, "send_window_start": NINE, "send_window_end": EIGHT_PM},
            "steps": ((10, c.DAYS, collection_coming),),
        },
        {
            "trigger": c.FOLLOW_UP,
            "name": gettext_lazy("Next collection: it is out"),
            "description": gettext_lazy("Fourteen days after the first look, the collection is out."),
            "fields": {"priority": 20, "reentry_days": 7, "send_window_start": NINE, "send_window_end": EIGHT_PM},
            "steps": ((0, c.HOURS, collection_out),),
        },
    ),
    # (from, to, days): by index in "campaigns"
    "follow_ups": ((1, 2, 14),),
}


def email_channel(*, now):
    """(channel, created): a channel on the email backend, "Email" created when none exists."""
    channel = Channel.objects.filter(backend=EMAIL_BACKEND).order_by("pk").first()
    if channel is not None:
        return channel, False
    channel = Channel(
        name=_("Email"),
        kind=EMAIL,
        backend=EMAIL_BACKEND,
        options={"from_email": settings.DEFAULT_FROM_EMAIL},
        created_at=now,
    )
    channel.full_clean()
    channel.save()
    return channel, True


def _campaign(spec, channel, *, active, now):
    campaign = Campaign(
        name=str(spec["name"]), description=str(spec["description"]), trigger=spec["trigger"],
        active=active, created_at=now, **spec["fields"],
    )  # fmt: skip
    campaign.full_clean()
    campaign.save()
    CampaignChannel.objects.create(campaign=campaign, channel=channel, order=0)
    for position, (value, unit, texts) in enumerate(spec["steps"], 1):
        step = CampaignStep.objects.create(campaign=campaign, position=position, delay_value=value, delay_unit=unit)
        template = MessageTemplate(step=step, channel=channel, **texts())
        template.full_clean()
        template.save()
    return campaign


@transaction.atomic
def setup_defaults(*, now=None, active=True):
    """Create what is missing of the starter set; return what was created:
    {"channels": [names], "frequency_caps": [descriptions], "exclusion_rules": [names],
    "campaigns": [names], "skipped_campaigns": [names of those that exist already],
    "journeys": [the sample journey's name, when created]}.
    ``active=False`` creates the campaigns inactive."""
    now = now or timezone.now()
    created = {"channels": [], "frequency_caps": [], "exclusion_rules": [], "campaigns": [], "skipped_campaigns": []}
    channel, new = email_channel(now=now)
    if new:
        created["channels"].append(channel.name)
    if not FrequencyCap.objects.filter(channel_kind__in=(EMAIL, "")).exists():
        for kind, most, days in FREQUENCY_CAPS:
            cap = FrequencyCap.objects.create(channel_kind=kind, max_messages=most, period_days=days)
            created["frequency_caps"].append(str(cap))
    if not ExclusionRule.objects.filter(event_type=RETURN_RULE["event_type"]).exists():
        rule = ExclusionRule.objects.create(
            name=str(RETURN_RULE["name"]), event_type=RETURN_RULE["event_type"], within_days=RETURN_RULE["within_days"]
        )
        created["exclusion_rules"].append(rule.name)
    for spec in CAMPAIGNS:
        name = str(spec["name"])
        if Campaign.objects.filter(trigger=spec["trigger"]).exists() or Campaign.objects.filter(name=name).exists():
            created["skipped_campaigns"].append(name)
            continue
        created["campaigns"].append(_campaign(spec, channel, active=active, now=now).name)
    journey = _journey(channel, active=active, now=now, created=created)
    created["journeys"] = [journey.name] if journey else []
    logger.info("journeys starter set: %s", {key: len(value) for key, value in created.items()})
    return created


def _journey(channel, *, active, now, created):
    """The sample journey, with its campaigns (their names added to ``created``), unless the
    shop has a journey already (its name depends on the language it was created in)."""
    name = str(JOURNEY["name"])
    if Journey.objects.exists():
        return None
    campaigns = []
    for spec in JOURNEY["campaigns"]:
        campaign = Campaign.objects.filter(name=str(spec["name"])).first()
        if campaign is None:
            campaign = _campaign(spec, channel, active=active, now=now)
            created["campaigns"].append(campaign.name)
        campaigns.append(campaign)
    journey = Journey.objects.create(
        name=name, description=str(JOURNEY["description"]), mode=Journey.OPTIMIZED, active=active, created_at=now
    )
    birthday = Campaign.objects.filter(trigger=c.BIRTHDAY).order_by("pk").first()
    entries = [campaign for campaign in campaigns if campaign.trigger != c.FOLLOW_UP]
    journey.campaigns.set(entries + ([birthday] if birthday else []))
    for first, then, days in JOURNEY["follow_ups"]:
        FollowUp.objects.create(journey=journey, campaign=campaigns[first], follow_up=campaigns[then], delay_days=days)
    return journey

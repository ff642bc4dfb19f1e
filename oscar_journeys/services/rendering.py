"""From an outbox ``Message`` to the ``OutgoingMessage`` a channel backend sends.

``MessageRenderer`` renders the message's template (``templating.py``: a safe subset of
Django's template language) against its context (``render_context.py``: primitives only,
loaded for the whole batch), in the customer's language and time zone, then, for email:
rewrites every http(s) link to a signed click URL (``/journeys/c/<token>/``; the originals
are returned, to be stored in ``Message.links``), adds an open pixel
(``/journeys/o/<token>.gif``) and the RFC 8058 one-click unsubscribe headers. One renderer
serves one batch: ``prefetch(messages)`` loads the baskets, orders and products a batch
needs in a few queries, and compiled templates and product cards are cached.

``render_preview`` shows staff what a template gives a customer now, writing nothing.
The context is documented in ``render_context.py`` and docs/templates.md.
"""

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext as _

from .. import tokens
from ..channels.base import OutgoingMessage
from ..exceptions import CampaignError
from ..models.channels import EMAIL, WEBHOOK
from ..templating import TEXT_FIELDS, compile_template, render_compiled
from .consent import address_for
from .render_context import (  # noqa: F401  (LAZY_PARTS and PREVIEW_TOKEN are re-exported)
    LAZY_PARTS,
    PREVIEW_TOKEN,
    ContextBuilder,
    customer_time_zone,
    plain,
    preview_trigger,
)
from .tracking import (  # noqa: F401  (site_url and absolute_url are re-exported)
    LinkTracker,
    absolute_url,
    add_open_pixel,
    public_url,
    site_url,
)


def unsubscribe_headers(url):
    """The RFC 8058 one-click unsubscribe headers of a marketing email."""
    return {"List-Unsubscribe": f"<{url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


class MessageRenderer(ContextBuilder):
    """Renders the messages of one batch. ``render(message)`` needs the message's customer,
    channel, template, campaign and enrollment (select_related); ``prefetch(messages)``
    first is optional and saves queries."""

    # --- rendering ------------------------------------------------------------------------

    @staticmethod
    def _compiled(template):
        compiled = {}
        for field in TEXT_FIELDS:
            source = getattr(template, field) or ""
            compiled[field] = compile_template(source, field=field) if source.strip() else None
        return compiled

    def _render_fields(self, template, *, customer, campaign, kind, trigger, message_id, preview):
        compiled = self._compiled(template)
        names = set().union(*(c.journeys_names for c in compiled.values() if c is not None))
        with translation.override(customer.language or settings.LANGUAGE_CODE), customer_time_zone(customer):
            context = self.context(
                customer=customer,
                campaign=campaign,
                kind=kind,
                names=names,
                trigger=trigger,
                message_id=message_id,
                preview=preview,
            )
            rendered = {
                field: render_compiled(c, context) if c is not None else "" for field, c in compiled.items()
            }
        rendered["subject"] = " ".join(rendered["subject"].split())
        rendered["short_text"] = rendered["short_text"].strip()
        return rendered, context

    def render(self, message):
        """``(OutgoingMessage, links)`` for an outbox message: ``links`` are the original
        URLs, by click index, to store in ``Message.links``."""
        template = message.template
        if template is None:
            raise CampaignError(
                _("Message %(id)s has no template any more (it was deleted).") % {"id": message.pk}
            )
        kind = message.channel.kind
        trigger = (message.enrollment.context if message.enrollment_id else None) or {}
        rendered, context = self._render_fields(
            template,
            customer=message.customer,
            campaign=message.campaign,
            kind=kind,
            trigger=trigger,
            message_id=message.pk,
            preview=False,
        )
        links, headers = [], {}
        if kind == EMAIL:
            keep = {context["unsubscribe_url"], context["preferences_url"]}
            tracker = LinkTracker(message.pk, self.base_url, keep)
            if rendered["body_html"]:
                pixel = public_url(
                    "message-open", self.base_url, token=tokens.make_token(tokens.OPEN, {"m": message.pk})
                )
                rendered["body_html"] = add_open_pixel(tracker.rewrite_html(rendered["body_html"]), pixel)
            rendered["body_text"] = tracker.rewrite_text(rendered["body_text"])
            links = tracker.links
            headers = unsubscribe_headers(context["unsubscribe_url"])
        metadata = {
            "message_id": message.pk,
            "campaign_id": message.campaign_id,
            "customer_id": message.customer_id,
            "step": message.step,
        }
        if kind == WEBHOOK:
            metadata["context"] = plain(context)
        outgoing = OutgoingMessage(
            to=message.recipient,
            subject=rendered["subject"],
            text=rendered["body_text"],
            html=rendered["body_html"],
            short_text=rendered["short_text"],
            headers=headers,
            idempotency_key=message.idempotency_key,
            metadata=metadata,
        )
        return outgoing, links


# --- preview ---


def render_preview(*, template, customer, now=None):
    """The message ``template`` would give ``customer`` now, for staff to look at: real
    data (their newest open basket, last order, last viewed products), links as they are
    (no tracking), placeholder unsubscribe / preferences / restore links. Writes nothing."""
    renderer = MessageRenderer(now=now)
    kind = template.channel.kind
    campaign = template.step.campaign if template.step_id else None
    rendered, context = renderer._render_fields(
        template,
        customer=customer,
        campaign=campaign,
        kind=kind,
        trigger=preview_trigger(customer),
        message_id=None,
        preview=True,
    )
    headers = unsubscribe_headers(context["unsubscribe_url"]) if kind == EMAIL else {}
    return OutgoingMessage(
        to=address_for(customer, kind),
        subject=rendered["subject"],
        text=rendered["body_text"],
        html=rendered["body_html"],
        short_text=rendered["short_text"],
        headers=headers,
        metadata={"customer_id": customer.pk, "campaign_id": campaign.pk if campaign else None, "preview": True},
    )

"""Push notifications through a provider's HTTP API (Expo, OneSignal, a shop's own relay to
FCM or APNs...). The recipient (``OutgoingMessage.to``) is the device or subscription token;
the title is the message's subject, the body its short text. See docs/channels.md for
provider presets."""

from django.utils.translation import gettext_lazy as _

from .provider import MappedHttpChannel, field_name, provider_option_fields


class HttpPushChannel(MappedHttpChannel):
    kind = "push"
    channel_name = _("Push notifications through an HTTP provider")
    field_defaults = {
        "to_field": "to",
        "title_field": "title",
        "body_field": "body",
        "url_field": "url",
        "data_field": "data",
    }

    @classmethod
    def option_fields(cls):
        return {
            **provider_option_fields(),
            "to_field": field_name(
                _("Token field"), "to", _('Provider\'s field for the device token (default "to"; "tokens[]" sends a list).')
            ),
            "title_field": field_name(_("Title field"), "title", _('Provider\'s field for the title (default "title").')),
            "body_field": field_name(_("Body field"), "body", _('Provider\'s field for the text (default "body").')),
            "url_field": field_name(
                _("Link field"), "url", _('Provider\'s field for the link opened on tap (default "url").')
            ),
            "data_field": field_name(
                _("Data field"),
                "data",
                _('Provider\'s field for the data the app receives: message, campaign and customer ids (default "data").'),
            ),
        }

    def fields(self, message):
        metadata = message.metadata or {}
        data = {k: str(v) for k, v in metadata.items() if k != "url" and v is not None}
        return {
            "to_field": message.to,
            "title_field": message.subject,
            "body_field": message.short_text or message.text,
            "url_field": metadata.get("url", ""),
            "data_field": data or None,
        }

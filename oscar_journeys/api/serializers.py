"""Serializers of the journeys API. Each event item is validated by
``services.ingest_validation.event_clean`` (shared with the CSV import), not here: a bad
item is answered on its own and does not fail the batch."""

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from .. import app_settings
from ..services.ingest import STATUSES


class EventBatchSerializer(serializers.Serializer):
    """The request body: ``{"events": [ ... ]}`` with 1 to API_MAX_BATCH items."""

    default_error_messages = {
        "invalid": _('The body must be a JSON object such as {{"events": [ ... ]}}, not a {datatype}.'),
    }

    events = serializers.ListField(
        error_messages={
            "required": _('The body has no "events": send {{"events": [ ... ]}}.'),
            "null": _('"events" must be a list of event objects, not null.'),
            "not_a_list": _('"events" must be a list of event objects, not a {input_type}.'),
            "empty": _('"events" is empty: send at least one event.'),
        },
        allow_empty=False,
    )

    def validate_events(self, value):
        limit = app_settings.API_MAX_BATCH
        if len(value) > limit:
            raise serializers.ValidationError(
                _(
                    "A request may carry at most %(limit)d events; this one has %(count)d. "
                    "Send them in several requests."
                )
                % {"limit": limit, "count": len(value)},
                code="batch_too_large",
            )
        return value


class ItemResultSerializer(serializers.Serializer):
    """One item's outcome (a services.ingest.ItemResult); ``errors`` only when there are some."""

    index = serializers.IntegerField()
    event_id = serializers.CharField(allow_null=True)
    status = serializers.ChoiceField(choices=STATUSES)
    errors = serializers.DictField(child=serializers.CharField(), required=False)

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if data.get("errors") is None:
            data.pop("errors", None)
        return data


class BatchResultSerializer(serializers.Serializer):
    """The response: ``results`` (one per item, in order) and ``counts`` per status."""

    results = ItemResultSerializer(many=True)
    counts = serializers.DictField(child=serializers.IntegerField())

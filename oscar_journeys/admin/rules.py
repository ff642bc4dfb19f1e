"""The rules that hold across campaigns: frequency caps and exclusion rules."""

from django import forms
from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from ..events import event_types
from ..models import ExclusionRule, FrequencyCap


@admin.register(FrequencyCap)
class FrequencyCapAdmin(admin.ModelAdmin):
    list_display = ("__str__", "channel_kind", "max_messages", "period_days", "active")
    list_filter = ("channel_kind", "active")
    fields = ("channel_kind", ("max_messages", "period_days"), "active")


def event_type_choices():
    return sorted(event_types().items(), key=lambda item: str(item[1]))


class ExclusionRuleForm(forms.ModelForm):
    event_type = forms.ChoiceField(
        label=ExclusionRule._meta.get_field("event_type").verbose_name,
        choices=event_type_choices,
        help_text=_("A customer with this event in the last days below gets nothing from the campaigns chosen."),
    )

    class Meta:
        model = ExclusionRule
        fields = ("name", "event_type", "within_days", "campaigns", "active")


@admin.register(ExclusionRule)
class ExclusionRuleAdmin(admin.ModelAdmin):
    form = ExclusionRuleForm
    list_display = ("name", "event_label", "within_days", "campaign_list", "active")
    list_filter = ("active",)
    search_fields = ("name",)
    filter_horizontal = ("campaigns",)

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("campaigns")

    @admin.display(description=_("event type"), ordering="event_type")
    def event_label(self, obj):
        return event_types().get(obj.event_type, obj.event_type)

    @admin.display(description=_("campaigns"))
    def campaign_list(self, obj):
        names = [campaign.name for campaign in obj.campaigns.all()]
        return ", ".join(names) if names else _("every campaign")

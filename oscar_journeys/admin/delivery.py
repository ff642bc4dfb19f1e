"""Enrollments, decisions and messages in the admin: read only (the loop writes them), with
the filters to answer "who got what, and why not". Recipients are shown masked."""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from ..models import Campaign, Decision, Enrollment, Message
from .common import EstimatedCountPaginator, ReadOnlyAdminMixin, customer_360_link
from .timeline import CustomerSearchMixin


def mask_address(value):
    """``john@example.com`` → ``j***@example.com``; ``+447911123456`` → ``+44*******56``;
    anything else keeps its first four characters."""
    value = value or ""
    if "@" in value:
        local, _at, domain = value.rpartition("@")
        return f"{local[:1]}***@{domain}"
    if value.startswith("+") and value[1:].isdigit():
        return value[:3] + "*" * max(len(value) - 5, 0) + value[-2:]
    if len(value) <= 4:
        return value
    return f"{value[:4]}…"


EXIT_REASONS = {
    "customer_gone": _("Customer deleted"),
    "campaign_ended": _("Campaign ended or inactive"),
    "ordered": _("Ordered"),
    "basket_emptied": _("Basket emptied or gone"),
    "added_to_basket": _("Added to basket"),
    "order_cancelled": _("Order cancelled"),
}


class ExitReasonFilter(admin.SimpleListFilter):
    """The known exit reasons: no ``SELECT DISTINCT`` over the whole table."""

    title = _("exit reason")
    parameter_name = "exit_reason"

    def lookups(self, request, model_admin):
        choices = list(EXIT_REASONS.items())
        if self.value() and self.value() not in EXIT_REASONS:
            choices.append((self.value(), self.value()))
        return choices

    def queryset(self, request, queryset):
        return queryset.filter(exit_reason=self.value()) if self.value() else queryset


class BigListMixin(CustomerSearchMixin, ReadOnlyAdminMixin):
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    raw_id_fields = ("customer",)

    @admin.display(description=_("customer"), ordering="customer")
    def customer_link(self, obj):
        return customer_360_link(obj.customer)


@admin.register(Enrollment)
class EnrollmentAdmin(BigListMixin, admin.ModelAdmin):
    list_display = (
        "triggered_at",
        "campaign",
        "customer_link",
        "status",
        "exit_reason_label",
        "held_out",
        "next_step",
        "next_due_at",
    )
    list_select_related = ("campaign", "customer")
    list_filter = ("status", "campaign", "held_out", ExitReasonFilter)
    date_hierarchy = "triggered_at"
    fields = (
        "campaign",
        "customer",
        "trigger_key",
        "triggered_at",
        "context",
        "status",
        "exit_reason",
        "held_out",
        "next_step",
        "next_due_at",
        "created_at",
        "updated_at",
    )

    @admin.display(description=_("exit reason"), ordering="exit_reason")
    def exit_reason_label(self, obj):
        return EXIT_REASONS.get(obj.exit_reason, obj.exit_reason) or "-"


@admin.register(Decision)
class DecisionAdmin(BigListMixin, admin.ModelAdmin):
    list_display = (
        "decided_at",
        "campaign",
        "customer_link",
        "step",
        "outcome",
        "reason",
        "channel",
        "policy",
        "attributed_value",
        "converted_at",
    )
    list_select_related = ("campaign", "customer", "channel")
    list_filter = ("outcome", "reason", "campaign", "attribution_closed")
    date_hierarchy = "decided_at"
    raw_id_fields = ("customer", "enrollment")
    fields = (
        "decided_at",
        "campaign",
        "customer",
        "enrollment",
        "step",
        "outcome",
        "reason",
        "chosen_among",
        "channel",
        "policy",
        "model_version",
        "propensity",
        "expected_value",
        "attributed_orders",
        "attributed_value",
        "converted_at",
        "attribution_closed",
    )
    readonly_fields = ("chosen_among",)

    @admin.display(description=_("chosen among"))
    def chosen_among(self, obj):
        """The campaigns due for the customer in this round, by name (one query)."""
        names = dict(Campaign.objects.filter(pk__in=obj.candidates or []).values_list("pk", "name"))
        return ", ".join(names.get(pk, str(pk)) for pk in obj.candidates or []) or "-"


@admin.register(Message)
class MessageAdmin(BigListMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "campaign",
        "customer_link",
        "step",
        "channel",
        "masked_recipient",
        "status",
        "sent_at",
        "opened_at",
        "clicked_at",
        "attempts",
    )
    list_select_related = ("campaign", "customer", "channel")
    list_filter = ("status", "campaign", "channel")
    date_hierarchy = "created_at"
    raw_id_fields = ("customer", "decision", "enrollment", "template")
    fields = (
        "campaign",
        "customer",
        "step",
        "channel",
        "template",
        "masked_recipient",
        "status",
        "idempotency_key",
        "send_after",
        "attempts",
        "claimed_at",
        "sent_at",
        "provider_id",
        "last_error",
        "links",
        "opened_at",
        "open_count",
        "clicked_at",
        "click_count",
        "created_at",
    )
    readonly_fields = ("masked_recipient",)

    @admin.display(description=_("recipient"))
    def masked_recipient(self, obj):
        return mask_address(obj.recipient)

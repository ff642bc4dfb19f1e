"""Consent and the suppression list in the admin.

Consent is read here, not edited: each change goes through ``services.consent.consent_set``
(which also writes it on the customer's timeline), so the admin offers an action that
records a withdrawal with the source "admin". Suppressed addresses are stored hashed: staff
add one by typing the address (normalised like everywhere else, then hashed); the address
itself is never stored nor shown. The list can be searched by a full address."""

from django import forms
from django.contrib import admin, messages
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ..models import Consent, Suppression
from ..models.channels import KIND_CHOICES
from ..models.consent import address_hash
from ..services.consent import consent_set, normalize_address
from .common import ReadOnlyAdminMixin, customer_360_link
from .timeline import CustomerSearchMixin


@admin.register(Consent)
class ConsentAdmin(CustomerSearchMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("changed_at", "customer_link", "channel_kind", "granted", "source", "wording")
    list_select_related = ("customer",)
    list_filter = ("channel_kind", "granted", "source")
    date_hierarchy = "changed_at"
    search_fields = ("customer__email",)
    fields = ("customer", "channel_kind", "granted", "source", "wording", "changed_at")
    raw_id_fields = ("customer",)
    actions = ("withdraw",)

    @admin.display(description=_("customer"), ordering="customer")
    def customer_link(self, obj):
        return customer_360_link(obj.customer)

    def has_withdraw_permission(self, request):
        return request.user.has_perm("oscar_journeys.change_consent")

    @admin.action(description=_("Record a withdrawal of consent (source: admin)"), permissions=["withdraw"])
    def withdraw(self, request, queryset):
        count = 0
        for consent in queryset.filter(granted=True).select_related("customer"):
            consent_set(customer=consent.customer, kind=consent.channel_kind, granted=False, source="admin")
            count += 1
        self.message_user(
            request,
            ngettext("Recorded %(count)d withdrawal.", "Recorded %(count)d withdrawals.", count) % {"count": count},
            messages.SUCCESS,
        )


class SuppressionForm(forms.ModelForm):
    address = forms.CharField(
        label=_("address"),
        max_length=254,
        help_text=_("The email, phone number or push token to suppress. Only its hash is stored."),
    )

    class Meta:
        model = Suppression
        fields = ("channel_kind", "reason", "detail")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "reason" in self.fields:
            self.fields["reason"].initial = Suppression.MANUAL

    def clean(self):
        data = super().clean()
        kind, address = data.get("channel_kind"), data.get("address")
        if kind and address:
            normalised = normalize_address(kind, address)
            if not normalised:
                self.add_error("address", _("Give an address."))
                return data
            key = address_hash(kind, normalised)
            existing = Suppression.objects.filter(channel_kind=kind, address_hash=key).first()
            if existing is not None:
                self.add_error(
                    "address",
                    _("This address is already suppressed (%(reason)s, since %(date)s).")
                    % {"reason": existing.get_reason_display(), "date": timezone.localdate(existing.created_at)},
                )
            self.instance.address_hash = key
        return data


def hashes_for_term(term):
    """The hash of ``term`` as an address of every kind (a search finds it on any list)."""
    return [address_hash(kind, normalize_address(kind, term)) for kind, _label in KIND_CHOICES]


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    form = SuppressionForm
    list_display = ("created_at", "channel_kind", "hash_prefix", "reason", "detail")
    list_filter = ("channel_kind", "reason")
    date_hierarchy = "created_at"
    search_fields = ("address_hash",)
    search_help_text = _("A full address (email, phone number or token): the list holds hashes only.")
    readonly_fields = ("channel_kind", "address_hash", "reason", "detail", "created_at")

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("channel_kind", "address", "reason", "detail")
        return self.readonly_fields

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else ()

    def has_change_permission(self, request, obj=None):
        return False if obj is not None else super().has_change_permission(request, obj)

    @admin.display(description=_("address (hashed)"), ordering="address_hash")
    def hash_prefix(self, obj):
        return f"{obj.address_hash[:12]}…"

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(address_hash__in=[term, *hashes_for_term(term)]), False

"""Customers in the admin: the list, the profile form, merging two records, and the
URLs of the customer 360 page (see ``customer360.py``)."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect
from django.urls import path
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from ..exceptions import InvalidEventError, MergeError
from ..models import Customer, CustomerIdentifier, CustomerMerge
from ..services.customers import add_identifier, customer_merge, normalize_email, normalize_phone
from . import customer360
from .common import JOURNEY_LINK_TEXT, EstimatedCountPaginator, customer_360_url
from .merges import revert_merges
from .search import customer_ids_for_term, name_query


class CustomerForm(forms.ModelForm):
    """The profile as staff edit it: email and phone are normalised like everywhere else."""

    class Meta:
        model = Customer
        fields = ("first_name", "last_name", "email", "phone", "date_of_birth", "user")

    def _normalized(self, name, normalize):
        value = self.cleaned_data.get(name, "")
        if not value:
            return ""
        try:
            return normalize(value)
        except InvalidEventError as error:
            raise forms.ValidationError(error.errors[name])

    def clean_email(self):
        return self._normalized("email", normalize_email)

    def clean_phone(self):
        return self._normalized("phone", normalize_phone)


class IdentifierInline(admin.TabularInline):
    model = CustomerIdentifier
    fields = ("kind", "value", "source", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    class Media:
        css = {"all": ["oscar_journeys/admin/journeys.css"]}

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class HasAccountFilter(admin.SimpleListFilter):
    title = _("shop account")
    parameter_name = "has_account"

    def lookups(self, request, model_admin):
        return (("yes", _("With an account")), ("no", _("Without an account")))

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(user__isnull=self.value() == "no")
        return queryset


class MergedFilter(admin.SimpleListFilter):
    title = _("merge")
    parameter_name = "merged"

    def lookups(self, request, model_admin):
        return (("yes", _("Merged into another customer")), ("no", _("Not merged")))

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(merged_into__isnull=self.value() == "no")
        return queryset


def pick_survivor(first, second):
    """The record that stays when two are merged: the one with an account, else the older."""
    if bool(first.user_id) != bool(second.user_id):
        return (first, second) if first.user_id else (second, first)
    ordered = sorted((first, second), key=lambda c: (c.created_at, c.pk))
    return ordered[0], ordered[1]


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    form = CustomerForm
    list_display = ("id", "name", "email", "phone", "user", "created", "merged_into_link", "journey_link")
    list_display_links = ("id", "name")
    sortable_by = ("id", "email", "created")  # the indexed columns
    list_select_related = ("user",)
    list_filter = (HasAccountFilter, MergedFilter)
    search_fields = ("email", "phone", "first_name", "last_name", "user__email", "identifiers__value")
    search_help_text = _(
        "An email, a phone number, a customer id, an identifier (an external id as "
        "'source:id') or words of the name."
    )
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # a count per filter choice is too slow on big tables
    paginator = EstimatedCountPaginator
    raw_id_fields = ("user",)
    readonly_fields = ("merged_into", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("first_name", "last_name", "email", "phone", "date_of_birth")}),
        (_("Account and merges"), {"fields": ("user", "merged_into", "created_at", "updated_at")}),
    )
    inlines = (IdentifierInline,)
    actions = ("merge_customers",)
    change_form_template = "oscar_journeys/admin/customer_change_form.html"

    @admin.display(description=_("name"), ordering="last_name")
    def name(self, obj):
        return f"{obj.first_name} {obj.last_name}".strip() or "-"

    @admin.display(description=_("created"), ordering="created_at")
    def created(self, obj):
        return date_format(timezone.localtime(obj.created_at), "SHORT_DATE_FORMAT")

    @admin.display(description=_("merged into"), ordering="merged_into")
    def merged_into_link(self, obj):
        if obj.merged_into_id is None:
            return "-"
        return format_html('<a href="{}">#{}</a>', customer_360_url(obj.merged_into_id), obj.merged_into_id)

    @admin.display(description=_("journey"))
    def journey_link(self, obj):
        return format_html('<a href="{}">{}</a>', customer_360_url(obj.pk), JOURNEY_LINK_TEXT)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        query = Q(pk__in=customer_ids_for_term(term))
        if "@" not in term and any(char.isalpha() for char in term):
            query |= name_query(term)  # the only search that reads the whole table
        return queryset.filter(query), False

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        for field, kind in (("email", CustomerIdentifier.EMAIL), ("phone", CustomerIdentifier.PHONE)):
            value = getattr(obj, field)
            if field not in form.changed_data or not value:
                continue
            holder = add_identifier(obj, kind, value, source="admin")
            if holder is not None and holder.pk != obj.pk:
                self.message_user(
                    request,
                    _(
                        "%(value)s already identifies customer %(other)s. If they are the same "
                        "person, select both in the list and merge them."
                    )
                    % {"value": value, "other": holder.pk},
                    messages.WARNING,
                )

    # --- merging ------------------------------------------------------------------------

    @admin.action(description=_("Merge selected customers"), permissions=["change"])
    def merge_customers(self, request, queryset):
        selected = list(queryset.order_by("pk")[:3])
        count = len(selected) if len(selected) < 3 else queryset.count()
        if count != 2:
            self.message_user(
                request,
                _("Select exactly two customers to merge (you selected %(count)d).") % {"count": count},
                messages.ERROR,
            )
            return None
        for customer in selected:
            if customer.merged_into_id:
                self.message_user(
                    request,
                    _(
                        "Customer %(customer)s is already merged into customer %(survivor)s; "
                        "select customer %(survivor)s instead."
                    )
                    % {"customer": customer.pk, "survivor": customer.merged_into_id},
                    messages.ERROR,
                )
                return None
        survivor, merged = pick_survivor(*selected)
        try:
            merge = customer_merge(survivor=survivor, merged=merged, reason=CustomerMerge.ADMIN, actor=request.user)
        except MergeError as error:
            self.message_user(request, _("Could not merge: %(error)s") % {"error": error}, messages.ERROR)
            return None
        self.message_user(
            request,
            _("Merged customer %(merged)s into customer %(survivor)s (%(events)d events moved).")
            % {"merged": merged.pk, "survivor": survivor.pk, "events": merge.events_moved},
            messages.SUCCESS,
        )
        return None

    # --- the 360 page -------------------------------------------------------------------

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        view = self.admin_site.admin_view
        return [
            path("<int:object_id>/360/", view(self.customer_360_view), name="%s_%s_360" % info),
            path(
                "<int:object_id>/360/revert-merge/",
                view(self.revert_merge_view),
                name="%s_%s_360_revert_merge" % info,
            ),
            *super().get_urls(),
        ]

    def customer_360_view(self, request, object_id):
        customer = get_object_or_404(Customer.objects.select_related("user", "merged_into"), pk=object_id)
        if not self.has_view_permission(request, customer):
            raise PermissionDenied
        return customer360.render(self, request, customer)

    def revert_merge_view(self, request, object_id):
        """POST ``merge=<id>``: revert a merge this customer took part in, back to the page."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        customer = get_object_or_404(Customer, pk=object_id)
        if not self.has_change_permission(request, customer):
            raise PermissionDenied
        merge_id = request.POST.get("merge", "")
        if not merge_id.isdigit():
            raise Http404(_("No merge given."))
        merge = get_object_or_404(
            CustomerMerge.objects.filter(Q(survivor=customer) | Q(merged=customer)), pk=int(merge_id)
        )
        revert_merges(self, request, [merge])
        return redirect(customer_360_url(customer.pk))

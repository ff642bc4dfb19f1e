"""The audit of customer merges, read-only, with an action to revert them."""

from django.contrib import admin, messages
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ..exceptions import MergeError
from ..models import CustomerMerge
from ..services.customers import customer_merge_revert
from .common import ReadOnlyAdminMixin, customer_360_link


def revert_merges(model_admin, request, merges):
    """Revert each merge (newest first, so that chains unwind), reporting every failure
    on its own; the merges that could be reverted stay reverted."""
    reverted = 0
    for merge in sorted(merges, key=lambda m: (m.created_at, m.pk), reverse=True):
        try:
            customer_merge_revert(merge, actor=request.user)
        except MergeError as error:
            model_admin.message_user(
                request,
                _("Could not revert the merge of customer %(merged)s into customer %(survivor)s: %(error)s")
                % {"merged": merge.merged_id, "survivor": merge.survivor_id, "error": error},
                messages.ERROR,
            )
        else:
            reverted += 1
    if reverted:
        model_admin.message_user(
            request,
            ngettext("Reverted %(count)d merge.", "Reverted %(count)d merges.", reverted) % {"count": reverted},
            messages.SUCCESS,
        )
    return reverted


class RevertedFilter(admin.SimpleListFilter):
    title = _("reverted")
    parameter_name = "reverted"

    def lookups(self, request, model_admin):
        return (("yes", _("Yes")), ("no", _("No")))

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(reverted_at__isnull=self.value() == "no")
        return queryset


@admin.register(CustomerMerge)
class CustomerMergeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "merged_link",
        "survivor_link",
        "reason",
        "actor",
        "events_moved",
        "reverted_at",
    )
    list_select_related = ("merged", "survivor", "actor")
    list_filter = ("reason", RevertedFilter)
    date_hierarchy = "created_at"
    search_fields = ("merged__id", "survivor__id")
    search_help_text = _("A customer id (merged or surviving).")
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    actions = ("revert_selected",)

    @admin.display(description=_("merged customer"), ordering="merged")
    def merged_link(self, obj):
        return customer_360_link(obj.merged)

    @admin.display(description=_("survivor"), ordering="survivor")
    def survivor_link(self, obj):
        return customer_360_link(obj.survivor)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        if not term.isdigit():
            return queryset.none(), False
        return queryset.filter(Q(merged_id=int(term)) | Q(survivor_id=int(term))), False

    def has_revert_permission(self, request):
        # Reverting changes customers: it takes the right to change them.
        return request.user.has_perm(f"{self.opts.app_label}.change_customer")

    @admin.action(description=_("Revert selected merges"), permissions=["revert"])
    def revert_selected(self, request, queryset):
        revert_merges(self, request, list(queryset.select_related("merged", "survivor")))

"""The timeline (events) and the daily snapshots in the admin: read-only lists built for
tables with tens of millions of rows."""

from django.contrib import admin
from django.db import connections
from django.db.models import Max, Min
from django.utils.translation import gettext_lazy as _

from ..events import event_types, label
from ..models import Event, EventSource, Snapshot
from .common import EstimatedCountPaginator, ReadOnlyAdminMixin, customer_360_link
from .search import canonical_ids, customer_ids_for_term

CUSTOMER_SEARCH_HELP = _("A customer's email, phone number or id.")


class EventTypeFilter(admin.SimpleListFilter):
    """Choices from the known event types: no ``SELECT DISTINCT`` over the whole table."""

    title = _("type")
    parameter_name = "type"

    def lookups(self, request, model_admin):
        choices = sorted(event_types().items(), key=lambda item: str(item[1]))
        current = self.value()
        if current and current not in dict(choices):
            choices.append((current, current))
        return choices

    def queryset(self, request, queryset):
        return queryset.filter(type=self.value()) if self.value() else queryset


def _loose_scan(column):
    """SQL listing the distinct values of an indexed leading ``column`` of the event table
    on PostgreSQL: a loose index scan, one index probe per value instead of a full scan."""
    table = connections[Event.objects.db].ops.quote_name(Event._meta.db_table)
    return f"""WITH RECURSIVE v(val) AS (
            (SELECT {column} FROM {table} ORDER BY {column} LIMIT 1)
            UNION ALL
            SELECT (SELECT e.{column} FROM {table} e WHERE e.{column} > v.val ORDER BY e.{column} LIMIT 1)
            FROM v WHERE v.val IS NOT NULL
        )"""


def _on_postgresql():
    return connections[Event.objects.db].vendor == "postgresql"


def stored_sources():
    """The distinct ``Event.source`` values, read through the (source, idempotency_key)
    unique index on PostgreSQL; a plain DISTINCT elsewhere (the embedded demo is small)."""
    if not _on_postgresql():
        return list(Event.objects.order_by().values_list("source", flat=True).distinct())
    with connections[Event.objects.db].cursor() as cursor:
        cursor.execute(_loose_scan("source") + " SELECT val FROM v WHERE val IS NOT NULL")
        return [row[0] for row in cursor.fetchall()]


def event_time_bounds():
    """(first, last) ``occurred_at`` of all events. On PostgreSQL, the minimum and maximum
    of each type through the (type, occurred_at) index: no scan of the table."""
    if not _on_postgresql():
        bounds = Event.objects.aggregate(first=Min("occurred_at"), last=Max("occurred_at"))
        return bounds["first"], bounds["last"]
    table = connections[Event.objects.db].ops.quote_name(Event._meta.db_table)
    with connections[Event.objects.db].cursor() as cursor:
        cursor.execute(
            _loose_scan("type")
            + f""" SELECT min(b.first), max(b.last) FROM v CROSS JOIN LATERAL (
                    SELECT min(e.occurred_at) AS first, max(e.occurred_at) AS last
                    FROM {table} e WHERE e.type = v.val
                ) b WHERE v.val IS NOT NULL"""
        )
        return cursor.fetchone()


class EventSourceFilter(admin.SimpleListFilter):
    """The sources events came from, and the event sources configured in the admin."""

    title = _("source")
    parameter_name = "source"

    def lookups(self, request, model_admin):
        names = sorted({*stored_sources(), *EventSource.objects.values_list("name", flat=True)})
        current = self.value()
        if current and current not in names:
            names.append(current)
        return [(name, name) for name in dict.fromkeys(names)]

    def queryset(self, request, queryset):
        return queryset.filter(source=self.value()) if self.value() else queryset


class CustomerSearchMixin:
    """Search the rows of a customer by the customer's email, phone or id (indexed)."""

    search_help_text = CUSTOMER_SEARCH_HELP

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(customer_id__in=canonical_ids(customer_ids_for_term(term))), False


@admin.register(Event)
class EventAdmin(CustomerSearchMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("occurred_at", "type_label", "customer_link", "value", "currency", "category", "source")
    list_select_related = ("customer",)
    list_filter = (EventTypeFilter, EventSourceFilter)
    date_hierarchy = "occurred_at"
    change_list_template = "oscar_journeys/admin/big_change_list.html"
    ordering = ("-id",)  # the default; see get_ordering
    sortable_by = ()  # sorting ten million rows on a column without an index takes seconds
    search_fields = ("customer__email",)
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = EstimatedCountPaginator
    fields = (
        "customer",
        "recorded_for",
        "type",
        "occurred_at",
        "recorded_at",
        "source",
        "idempotency_key",
        "value",
        "currency",
        "category",
        "product",
        "payload",
    )
    raw_id_fields = ("customer", "recorded_for", "product")

    def get_ordering(self, request):
        # Newest first. Filtered by type or searched by customer, by occurred_at: an index
        # on (type, occurred_at) or (customer, occurred_at) serves it. Otherwise by id, the
        # order of arrival: sorting millions of rows by occurred_at has no index to use.
        if request.GET.get("type") or request.GET.get("q"):
            return ("-occurred_at", "-id")
        return ("-id",)

    def date_hierarchy_bounds(self, cl):
        """First and last dates the drill-down offers (see ``datehierarchy.py``)."""
        return event_time_bounds()

    @admin.display(description=_("type"), ordering="type")
    def type_label(self, obj):
        return label(obj.type)

    @admin.display(description=_("customer"), ordering="customer")
    def customer_link(self, obj):
        return customer_360_link(obj.customer)


@admin.register(Snapshot)
class SnapshotAdmin(CustomerSearchMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "as_of",
        "customer_link",
        "frequency",
        "monetary",
        "recency_days",
        "days_since_last_engagement",
        "open_basket_value",
        "favourite_category",
    )
    list_select_related = ("customer",)
    search_fields = ("customer__email",)
    # (as_of, customer) is unique and indexed: a total order the database reads from the index.
    ordering = ("-as_of", "-customer")
    sortable_by = ()
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = EstimatedCountPaginator
    raw_id_fields = ("customer",)

    @admin.display(description=_("customer"), ordering="customer")
    def customer_link(self, obj):
        return customer_360_link(obj.customer)

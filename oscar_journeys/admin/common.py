"""Pieces shared by the admin classes: read-only behaviour, the paginator for big tables,
and links to the customer 360 page."""

from django.core.paginator import Paginator
from django.db import connections
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _


class ReadOnlyAdminMixin:
    """Staff can look, not touch: no add, change or delete (the timeline is append-only)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class EstimatedCountPaginator(Paginator):
    """On PostgreSQL, an unfiltered list of a big table uses the planner's row estimate
    (``pg_class.reltuples``) instead of ``COUNT(*)``, which reads the whole table. Filtered
    lists, small tables and other databases count exactly."""

    exact_below = 100_000

    @cached_property
    def count(self):
        query = getattr(self.object_list, "query", None)
        if query is not None and not query.where and not query.distinct:
            estimate = self._estimate(self.object_list)
            if estimate is not None and estimate >= self.exact_below:
                return estimate
        return super().count

    @staticmethod
    def _estimate(queryset):
        connection = connections[queryset.db]
        if connection.vendor != "postgresql":
            return None
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
                [queryset.model._meta.db_table],
            )
            row = cursor.fetchone()
        return row[0] if row and row[0] is not None and row[0] >= 0 else None


def customer_360_url(customer_id):
    return reverse("admin:oscar_journeys_customer_360", args=[customer_id])


def customer_360_link(customer, text=None):
    """An HTML link to the 360 page of ``customer`` (an instance, already fetched)."""
    if customer is None:
        return "-"
    return format_html('<a href="{}">{}</a>', customer_360_url(customer.pk), text or str(customer))


JOURNEY_LINK_TEXT = _("360")

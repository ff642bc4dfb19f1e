"""Journeys in the admin: the journey form (mode, campaigns, follow-ups), the journey drawn
as a graph, and the policy's versions (read-only). See docs/journeys.md.

The graph is an SVG drawn on the server (no script, no external asset): the customer's
decision point on the left, the campaigns a customer can enter by and "nothing" next to it,
then each follow-up one column further, with its delay and condition on the arrow. Names go
through the template's escaping."""

from collections import deque

from django.contrib import admin
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ..models import Campaign, FollowUp, Journey, PolicyVersion
from . import journey_report
from .common import ReadOnlyAdminMixin

NODE_W, NODE_H, COL_W, ROW_H, MARGIN = 190, 44, 260, 70, 20


def graph_layout(entries, links, names):
    """Positions for the journey graph. ``entries``: campaign ids a customer enters by;
    ``links``: [(campaign id, follow-up id, label)]; ``names``: {campaign id: name}.
    Returns {"nodes": [{"key", "label", "x", "y", "kind"}], "edges": [{"x1", "y1", "x2", "y2",
    "label", "lx", "ly"}], "width", "height"}: columns by the shortest number of follow-ups
    from an entry (a campaign reached only as a follow-up of a campaign outside the journey
    starts a column after the entries)."""
    column = {cid: 1 for cid in entries}
    queue = deque(entries)
    after = {}
    for source, target, _label in links:
        after.setdefault(source, []).append(target)
    while queue:
        cid = queue.popleft()
        for target in after.get(cid, []):
            if target not in column:
                column[target] = column[cid] + 1
                queue.append(target)
    for source, target, _label in links:  # sources outside the journey's entries
        for cid in (source, target):
            column.setdefault(cid, 2)
    columns = {}
    for cid in sorted(column, key=lambda c: (column[c], names.get(c, ""), c)):
        columns.setdefault(column[cid], []).append(cid)
    columns.setdefault(1, [])
    columns[1].append("nothing")
    position = {"start": (MARGIN, MARGIN + (max(len(c) for c in columns.values()) - 1) * ROW_H / 2)}
    for number, keys in columns.items():
        for row, key in enumerate(keys):
            position[key] = (MARGIN + number * COL_W, MARGIN + row * ROW_H)
    nodes = [{"key": "start", "label": gettext("Customer eligible"), "kind": "start"}]
    nodes += [
        {"key": key, "label": gettext("Nothing") if key == "nothing" else names.get(key, str(key)),
         "kind": "nothing" if key == "nothing" else ("entry" if key in entries else "follow_up")}
        for keys in columns.values() for key in keys
    ]
    for node in nodes:
        node["x"], node["y"] = position[node["key"]]
        node["tx"], node["ty"] = node["x"] + 10, node["y"] + NODE_H / 2 + 4
    edges = [(("start", key), "") for key in [*entries, "nothing"]]
    edges += [((source, target), label) for source, target, label in links]
    drawn = []
    for (source, target), label in edges:
        (x1, y1), (x2, y2) = position[source], position[target]
        x1, y1, y2 = x1 + NODE_W, y1 + NODE_H / 2, y2 + NODE_H / 2
        if x2 <= x1:  # back to an earlier column: leave from the bottom, arrive from below
            x1, y1, y2 = x1 - NODE_W / 2, y1 + NODE_H / 2, y2 + NODE_H
            x2 = x2 + NODE_W / 2
        drawn.append({"x1": x1, "y1": y1, "x2": x2, "y2": y2, "label": label,
                      "lx": (x1 + x2) / 2, "ly": (y1 + y2) / 2 - 6})
    width = max(x for x, _ in position.values()) + NODE_W + MARGIN
    height = max(y for _, y in position.values()) + NODE_H + MARGIN + 20
    return {"nodes": nodes, "edges": drawn, "width": width, "height": height, "node_w": NODE_W, "node_h": NODE_H}


def follow_up_label(link):
    days = ngettext("after %(days)d day", "after %(days)d days", link.delay_days) % {"days": link.delay_days}
    if link.condition == FollowUp.RESPONDED:
        return gettext("%(after)s, if responded") % {"after": days}
    if link.condition == FollowUp.NOT_RESPONDED:
        return gettext("%(after)s, if no response") % {"after": days}
    return days


def journey_graph_html(journey):
    links = list(journey.follow_ups.select_related("campaign", "follow_up"))
    entries = [c.pk for c in journey.campaigns.order_by("-priority", "name")]
    names = {c.pk: c.name for c in journey.campaigns.all()}
    for link in links:
        names[link.campaign_id], names[link.follow_up_id] = link.campaign.name, link.follow_up.name
    layout = graph_layout(entries, [(l.campaign_id, l.follow_up_id, follow_up_label(l)) for l in links], names)
    return render_to_string("oscar_journeys/admin/journey_graph.html", {"graph": layout, "journey": journey})


class FollowUpInline(admin.TabularInline):
    model = FollowUp
    extra = 1
    fields = ("campaign", "follow_up", "delay_days", "condition")
    autocomplete_fields = ()


@admin.register(Journey)
class JourneyAdmin(admin.ModelAdmin):
    list_display = ("name", "mode", "active", "campaign_count", "follow_up_count", "updated_at", "report_link")
    list_filter = ("mode", "active")
    search_fields = ("name", "description")
    filter_horizontal = ("campaigns",)
    inlines = [FollowUpInline]
    readonly_fields = ("graph",)
    fieldsets = (
        (None, {"fields": ("name", "description", "active", "mode", "campaigns")}),
        (_("Self-optimizing options"), {"fields": ("discount", "depth", "exploration", "holdout")}),
        (_("Journey"), {"fields": ("graph",)}),
    )

    @admin.display(description=_("campaigns"))
    def campaign_count(self, obj):
        return obj.campaigns.count()

    @admin.display(description=_("follow-ups"))
    def follow_up_count(self, obj):
        return obj.follow_ups.count()

    @admin.display(description=_("graph"))
    def graph(self, obj):
        if obj is None or obj.pk is None:
            return gettext("Save the journey to see it drawn.")
        return journey_graph_html(obj)

    @admin.display(description=_("report"))
    def report_link(self, obj):
        url = reverse("admin:oscar_journeys_journey_report", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, _("report"))

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:object_id>/report/", view(journey_report.report_view(self)),
                 name="oscar_journeys_journey_report"),
            *super().get_urls(),
        ]


@admin.register(PolicyVersion)
class PolicyVersionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("version", "status", "started_at", "finished_at", "outcomes", "learned_until")
    list_filter = ("status",)
    fields = ("version", "status", "started_at", "finished_at", "learned_until", "outcomes", "learned", "error")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).defer("artifact")

    @admin.display(description=_("what it learned"))
    def learned(self, obj):
        rows = [dict(row) for row in obj.summary or []]
        names = dict(Campaign.objects.filter(pk__in=[r.get("campaign_id") for r in rows]).values_list("pk", "name"))
        for row in rows:
            row["name"] = names.get(row.get("campaign_id"), row.get("campaign_id"))
        return render_to_string("oscar_journeys/admin/policy_summary.html", {"rows": rows})

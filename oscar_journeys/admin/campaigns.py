"""Campaigns in the admin: the list, the form (trigger options, audience, schedule,
measurement) with its channels and steps, and the step page where each step's message
templates are written (one per channel). See docs/admin.md.

Templates are edited on the step's own page (``CampaignStepAdmin``, reached from the
"edit templates" link of each step row): a step has one template per channel, and each
template has four long text fields, too much for a row of an inline."""

from django.contrib import admin, messages
from django.db.models import Count, IntegerField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ..ml import audience
from ..models import Campaign, CampaignChannel, CampaignStep, Channel, Decision, Enrollment, Message, MessageTemplate
from . import preview, reports
from .rule_builder import RuleBuilderWidget


def _count_of(queryset):
    """A subquery counting ``queryset`` rows of the outer campaign (0 when none)."""
    counted = queryset.filter(campaign=OuterRef("pk")).order_by().values("campaign").annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def campaign_problems(campaign):
    """What keeps a saved campaign from sending, in words for the shop owner (a list,
    empty when it is complete). Shown as warnings after each save."""
    problems = []
    steps = list(campaign.steps.order_by("position"))
    channel_ids = list(CampaignChannel.objects.filter(campaign=campaign).values_list("channel_id", flat=True))
    if not steps:
        problems.append(_("The campaign has no step yet: it sends nothing. Add a step (its delay after the trigger)."))
    if not channel_ids:
        problems.append(_("The campaign has no channel yet: it sends nothing. Add at least one channel."))
    if campaign.target_group_id and not campaign.target_group.active:
        problems.append(
            _("The target group %(group)s is inactive: the campaign reaches nobody until it is active again.")
            % {"group": campaign.target_group}
        )
    if not steps or not channel_ids:
        return problems
    channels = {channel.pk: channel for channel in Channel.objects.filter(pk__in=channel_ids)}
    written = set(MessageTemplate.objects.filter(step__campaign=campaign).values_list("step_id", "channel_id"))
    for step in steps:
        missing = [str(channels[cid]) for cid in channel_ids if (step.pk, cid) not in written]
        if missing:
            problems.append(
                _("Step %(step)s has no template for %(channels)s: customers reached only there get nothing.")
                % {"step": step.position, "channels": ", ".join(missing)}
            )
    disabled = [str(channel) for channel in channels.values() if not channel.enabled]
    if disabled:
        problems.append(_("These channels are disabled: %(channels)s.") % {"channels": ", ".join(disabled)})
    return problems


class CampaignChannelInline(admin.TabularInline):
    model = CampaignChannel
    fields = ("channel", "order")
    extra = 0
    verbose_name_plural = _("channels (the first one that reaches the customer is used, by order)")


class CampaignStepInline(admin.TabularInline):
    model = CampaignStep
    fields = ("position", "delay_value", "delay_unit", "templates")
    readonly_fields = ("templates",)
    extra = 0
    show_change_link = True
    verbose_name_plural = _("steps (each one sent its delay after the trigger)")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(template_count=Count("templates"))

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        # No prefilled position or delay: a new row left at the model defaults would count as
        # "unchanged" and be dropped without a word.
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name in ("position", "delay_value"):
            field.initial = None
        return field

    @admin.display(description=_("message templates"))
    def templates(self, obj):
        if obj.pk is None:
            return _("Save the campaign, then write this step's templates.")
        count = getattr(obj, "template_count", None)
        if count is None:
            count = obj.templates.count()
        text = ngettext("%(count)d template: edit", "%(count)d templates: edit", count) % {"count": count}
        return format_html('<a href="{}">{}</a>', reverse("admin:oscar_journeys_campaignstep_change", args=[obj.pk]), text)


TRIGGER_HELP = _(
    "Each option applies to the triggers its help text names; the others ignore it. "
    "Cart abandoned: the minimum basket value (the delay is the first step's). After a purchase: "
    "minimum order value, products, categories. Birthday: days before. Win-back: days without an "
    "order and minimum past orders. Browse abandoned: products, categories. Scheduled: send at, repeat. "
    "Lifecycle stage changed: the stage customers enter."
)


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "trigger",
        "active",
        "priority",
        "holdout",
        "enrolled",
        "in_progress",
        "sent",
        "held_out",
        "report_link",
    )
    list_filter = ("trigger", "active", "channels", "target_group")
    search_fields = ("name", "description")
    raw_id_fields = ("products", "categories")
    fieldsets = (
        (None, {"fields": ("name", "description", "trigger", "active", "priority")}),
        (
            _("Trigger options"),
            {
                "description": TRIGGER_HELP,
                "fields": (
                    "min_basket_value",
                    ("min_order_value",),
                    "products",
                    "categories",
                    "days_before_birthday",
                    ("days_without_order", "min_past_orders"),
                    ("send_at", "recurrence"),
                    "lifecycle_stage",
                ),
            },
        ),
        (
            _("Audience"),
            {
                "description": _(
                    "A customer must meet every audience condition and, when a target group is chosen, be one of "
                    "its members."
                ),
                "fields": ("audience", "target_group"),
            },
        ),
        (
            _("Schedule and send window"),
            {"fields": (("starts_at", "ends_at"), ("send_window_start", "send_window_end"), "reentry_days")},
        ),
        (_("Measurement"), {"fields": ("holdout_percent", "attribution_days")}),
    )
    inlines = (CampaignChannelInline, CampaignStepInline)
    actions = ("activate", "deactivate", "run_now")

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.resolver_match and request.resolver_match.url_name.endswith("changelist"):
            queryset = queryset.annotate(
                enrolled_count=_count_of(Enrollment.objects.all()),
                active_count=_count_of(Enrollment.objects.filter(status=Enrollment.ACTIVE)),
                sent_count=_count_of(Message.objects.filter(status=Message.SENT)),
                held_out_count=_count_of(Decision.objects.filter(outcome=Decision.HOLDOUT)),
            )
        return queryset

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "audience":
            kwargs["widget"] = RuleBuilderWidget(fields=audience.FIELDS)
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_autocomplete_fields(self, request):
        # Searchable drop-downs when the shop's catalogue admin allows it; raw ids otherwise.
        registry = self.admin_site._registry
        return tuple(
            name
            for name in ("products", "categories")
            if getattr(registry.get(Campaign._meta.get_field(name).related_model), "search_fields", None)
        )

    @admin.display(description=_("holdout"), ordering="holdout_percent")
    def holdout(self, obj):
        return f"{obj.holdout_percent.normalize():f} %"

    @admin.display(description=_("enrolled"), ordering="enrolled_count")
    def enrolled(self, obj):
        return getattr(obj, "enrolled_count", "-")

    @admin.display(description=_("in progress"), ordering="active_count")
    def in_progress(self, obj):
        return getattr(obj, "active_count", "-")

    @admin.display(description=_("sent"), ordering="sent_count")
    def sent(self, obj):
        return getattr(obj, "sent_count", "-")

    @admin.display(description=_("held out"), ordering="held_out_count")
    def held_out(self, obj):
        return getattr(obj, "held_out_count", "-")

    @admin.display(description=_("report"))
    def report_link(self, obj):
        return format_html('<a href="{}">{}</a>', reverse("admin:oscar_journeys_campaign_report", args=[obj.pk]), _("report"))

    # --- saving -------------------------------------------------------------------------

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        for problem in campaign_problems(form.instance):
            self.message_user(request, problem, messages.WARNING)

    # --- actions ------------------------------------------------------------------------

    @admin.action(description=_("Activate selected campaigns"), permissions=["change"])
    def activate(self, request, queryset):
        count = queryset.update(active=True)
        self.message_user(
            request,
            ngettext("Activated %(count)d campaign.", "Activated %(count)d campaigns.", count) % {"count": count},
            messages.SUCCESS,
        )

    @admin.action(description=_("Deactivate selected campaigns"), permissions=["change"])
    def deactivate(self, request, queryset):
        count = queryset.update(active=False)
        self.message_user(
            request,
            ngettext(
                "Deactivated %(count)d campaign: its customers in progress leave it at their next step.",
                "Deactivated %(count)d campaigns: their customers in progress leave them at their next step.",
                count,
            )
            % {"count": count},
            messages.SUCCESS,
        )

    @admin.action(description=_("Run now (one round of triggers, decisions and sending)"), permissions=["change"])
    def run_now(self, request, queryset):
        from .. import tasks

        tasks.enqueue_on_commit(tasks.journeys_tick)
        self.message_user(
            request,
            _(
                "Queued one round of the journeys loop: it looks for new triggers of every running campaign, "
                "decides the due steps and sends their messages."
            ),
            messages.SUCCESS,
        )
        idle = [str(campaign) for campaign in queryset if not campaign.active]
        if idle:
            self.message_user(
                request,
                _("These campaigns are inactive and send nothing: %(names)s.") % {"names": ", ".join(idle)},
                messages.WARNING,
            )

    # --- extra pages: report, overview, template preview -----------------------------------

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("report/", view(reports.overview_view(self)), name="oscar_journeys_campaign_overview"),
            path("preview/", view(preview.preview_view(self)), name="oscar_journeys_campaign_preview"),
            path("<int:object_id>/report/", view(reports.report_view(self)), name="oscar_journeys_campaign_report"),
            *super().get_urls(),
        ]


class MessageTemplateInline(admin.StackedInline):
    model = MessageTemplate
    fields = ("channel", "subject", "body_text", "body_html", "short_text", "preview_link")
    readonly_fields = ("preview_link",)
    extra = 0

    def get_extra(self, request, obj=None, **kwargs):
        return 1 if obj is None or not obj.templates.exists() else 0

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        step = getattr(request, "_journeys_step", None)
        if db_field.name == "channel" and step is not None:
            ids = CampaignChannel.objects.filter(campaign_id=step.campaign_id).values("channel_id")
            if CampaignChannel.objects.filter(campaign_id=step.campaign_id).exists():
                kwargs["queryset"] = Channel.objects.filter(pk__in=ids)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description=_("preview"))
    def preview_link(self, obj):
        if obj.pk is None:
            return _("Save first, then preview it with a real customer.")
        url = reverse("admin:oscar_journeys_campaign_preview") + f"?template={obj.pk}"
        return format_html('<a href="{}">{}</a>', url, _("Preview with a customer"))


@admin.register(CampaignStep)
class CampaignStepAdmin(admin.ModelAdmin):
    """A step with its templates. Not listed on the admin index: reached from its campaign."""

    list_display = ("__str__", "campaign", "position", "delay_value", "delay_unit")
    list_select_related = ("campaign",)
    list_filter = ("campaign",)
    fields = ("campaign", "position", ("delay_value", "delay_unit"), "variables")
    readonly_fields = ("variables",)
    inlines = (MessageTemplateInline,)

    def has_module_permission(self, request):
        return False

    def get_readonly_fields(self, request, obj=None):
        return ("campaign", "variables") if obj is not None else ("variables",)

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        request._journeys_step = obj  # the template inline offers the campaign's channels
        return obj

    @admin.display(description=_("what templates can use"))
    def variables(self, obj):
        names = (
            "customer.first_name", "customer.last_name", "customer.full_name", "customer.email",
            "basket.lines", "basket.total", "basket.currency", "basket.restore_url",
            "order.number", "order.total", "order.lines", "products", "recommendations",
            "campaign.name", "shop.name", "shop.url", "shop.postal_address",
            "unsubscribe_url", "preferences_url",
        )  # fmt: skip
        return format_html(
            "{}<br>{} <code>{}</code><br>{}",
            format_html_join(", ", "<code>{{{{ {} }}}}</code>", ((name,) for name in names)),
            _("A loop over the basket lines:"),
            "{% for line in basket.lines %}{{ line.name }} × {{ line.quantity }}: {{ line.price }}{% endfor %}",
            _(
                "Every email needs the unsubscribe link (unsubscribe_url) in each of its bodies. "
                "Tags that reach outside the template (load, include, extends, url...) are refused."
            ),
        )

    def _to_campaign(self, obj):
        return HttpResponseRedirect(reverse("admin:oscar_journeys_campaign_change", args=[obj.campaign_id]))

    def response_post_save_change(self, request, obj):
        return self._to_campaign(obj)

    def response_post_save_add(self, request, obj):
        return self._to_campaign(obj)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        for problem in campaign_problems(form.instance.campaign):
            self.message_user(request, problem, messages.WARNING)

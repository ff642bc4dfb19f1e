"""Channels in the admin: a channel names a backend (one of OSCAR_JOURNEYS_CHANNEL_BACKENDS)
and holds the options that backend declares in ``option_fields()``.

The form is built per request: the backend comes from the submitted form, else the channel,
else ``?backend=`` (the add page first asks which backend; the links carry it). Each
backend option becomes a form field ``option_<name>``. Secret options (passwords, API
keys, signing secrets) are password inputs that never render a value: left empty, the
stored secret is kept. A secret the backend generates (a webhook's signing secret) is shown
once, in a message, after the save. ``Channel.clean()`` runs the backend's
``validate_options``; its errors land on the matching fields."""

import copy
import logging
import uuid
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db.models import Count
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.module_loading import import_string
from django.utils.translation import gettext_lazy as _

from .. import app_settings
from ..channels import backend_choices
from ..channels.base import OutgoingMessage
from ..exceptions import JourneysError
from ..models import Channel
from ..models.channels import KIND_CHOICES

logger = logging.getLogger(__name__)

OPTION_PREFIX = "option_"
SECRET_HELP = _("Secret: never shown. Leave empty to keep the current value.")

SECRET_SHOWN_ONCE = _(
    "The channel “%(channel)s” has a new %(option)s, generated on save: %(value)s — copy it now, "
    "it is not shown again."
)


def backend_class_or_none(path):
    """The backend class at ``path`` when it is one of the configured backends."""
    if not path or path not in app_settings.CHANNEL_BACKENDS:
        return None
    try:
        return import_string(path)
    except ImportError:
        return None


class ChannelForm(forms.ModelForm):
    """The channel's own fields; ``ChannelAdmin.get_form`` adds the backend's options."""

    backend_class = None  # set on the class ChannelAdmin.get_form builds
    backend_path = ""

    class Meta:
        model = Channel
        fields = ("name", "backend", "enabled", "quiet_hours_start", "quiet_hours_end")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        cls = self.backend_class
        kind = cls.kind if cls is not None else self.instance.kind
        if cls is not None and not self.instance.pk:
            self.instance.kind = cls.kind
        choices = backend_choices(kind) if kind else backend_choices()
        if self.instance.backend and self.instance.backend not in dict(choices):
            choices = [(self.instance.backend, self.instance.backend), *choices]
        self.fields["backend"] = forms.ChoiceField(
            label=Channel._meta.get_field("backend").verbose_name,
            choices=choices,
            initial=self.instance.backend or self.backend_path,
            help_text=_("Changing it shows the new backend's options after saving."),
        )
        for name in self.option_names():
            if name not in self.secret_names() and name in (self.instance.options or {}):
                self.fields[OPTION_PREFIX + name].initial = self.instance.options[name]
        self.kept_secrets, self.given_secrets = set(), set()

    # --- the backend's options ----------------------------------------------------------

    def option_names(self):
        return list(self.backend_class.option_fields()) if self.backend_class else []

    def secret_names(self):
        return set(self.backend_class.secret_options) if self.backend_class else set()

    def _submitted(self, name):
        field_name = OPTION_PREFIX + name
        if field_name in self.cleaned_data:
            return self.cleaned_data[field_name]
        field = self.fields[field_name]
        return field.widget.value_from_datadict(self.data, self.files, self.add_prefix(field_name))

    def clean(self):
        data = super().clean()
        cls = self.backend_class
        if cls is None:
            return data
        same_backend = self.instance.pk and self.initial.get("backend") == data.get("backend")
        stored = dict(self.instance.secrets or {}) if same_backend else {}
        options, secrets = {}, {}
        for name in self.option_names():
            value = self._submitted(name)
            if name in self.secret_names():
                if value not in (None, ""):
                    secrets[name] = value
                    self.given_secrets.add(name)
                elif name in stored:
                    secrets[name] = stored[name]
                    self.kept_secrets.add(name)
            elif value not in (None, "", [], {}):
                options[name] = value
        self.instance.kind = cls.kind
        self.instance.options, self.instance.secrets = options, secrets
        return data

    def add_error(self, field, error):
        """Route the backend's errors (keyed by option name, or "options") to the fields
        of this form, and drop a message the field already shows."""
        if field is None and isinstance(error, ValidationError) and hasattr(error, "error_dict"):
            routed = {}
            for key, errors in error.error_dict.items():
                if key in self.option_names():
                    key = OPTION_PREFIX + key
                elif key not in self.fields:
                    key = NON_FIELD_ERRORS
                shown = set(self.errors.get(key, []))
                fresh = [e for e in errors if not set(ValidationError(e).messages) <= shown]
                if fresh:
                    routed.setdefault(key, []).extend(fresh)
            if not routed:
                return
            error = ValidationError(routed)
        super().add_error(field, error)


def build_form_class(base, path, cls):
    """A subclass of ``base`` with one field per option of backend ``cls`` (at ``path``)."""
    attrs = {"backend_class": cls, "backend_path": path if cls is not None else ""}
    if cls is not None:
        for name, field in cls.option_fields().items():
            field = copy.deepcopy(field)
            if name in cls.secret_options:
                field.widget = forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})
                field.required = False
                field.help_text = format_html("{} {}", field.help_text, SECRET_HELP) if field.help_text else SECRET_HELP
            attrs[OPTION_PREFIX + name] = field
    return type("ChannelForm", (base,), attrs)


class TestMessageForm(forms.Form):
    address = forms.CharField(
        label=_("Send to"),
        max_length=254,
        help_text=_("An email address, a phone number, a push token or (webhook) any id, as the channel expects."),
    )


def send_test_message(channel, address):
    """Send a short test through ``channel`` to ``address`` (given by staff: no consent or
    suppression check, nothing recorded). Returns the provider's id; raises JourneysError."""
    from ..services.consent import normalize_address

    texts = {"name": channel.name}
    body = _("This is a test message sent from the admin through the channel %(name)s. It works.") % texts
    outgoing = OutgoingMessage(
        to=normalize_address(channel.kind, address),
        subject=_("Test message from the channel %(name)s") % texts,
        text=body,
        html=format_html("<p>{}</p>", body),
        short_text=_("Test message through the channel %(name)s.") % texts,
        idempotency_key=f"test-{uuid.uuid4().hex}",
        metadata={"test": True, "channel_id": channel.pk},
    )
    with channel.get_backend() as backend:
        return backend.send(outgoing).provider_id


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    form = ChannelForm
    actions = ("send_test",)
    list_display = ("name", "kind", "backend_name", "enabled", "quiet_hours", "campaign_count")
    list_filter = ("kind", "enabled")
    search_fields = ("name",)
    readonly_fields = ("kind", "inbound_url", "created_at", "updated_at")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(campaign_total=Count("campaigns", distinct=True))

    @staticmethod
    def _backend_path(request, obj):
        if request.method == "POST" and "backend" in request.POST:
            return request.POST["backend"]
        if obj is not None:
            return obj.backend
        return request.GET.get("backend", "")

    def _backend(self, request, obj):
        return backend_class_or_none(self._backend_path(request, obj))

    def get_form(self, request, obj=None, change=False, **kwargs):
        path = self._backend_path(request, obj)
        kwargs["form"] = build_form_class(self.form, path, backend_class_or_none(path))
        return super().get_form(request, obj, change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        cls = self._backend(request, obj)
        fieldsets = [(None, {"fields": ("name", "kind", "backend", "enabled")})]
        if cls is not None and cls.option_fields():
            fieldsets.append(
                (
                    _("Options of %(backend)s") % {"backend": cls.channel_name},
                    {"fields": [OPTION_PREFIX + name for name in cls.option_fields()]},
                )
            )
        fieldsets.append((_("Quiet hours"), {"fields": (("quiet_hours_start", "quiet_hours_end"),)}))
        if obj is not None:
            fieldsets.append((_("Inbound webhook and history"), {"fields": ("inbound_url", "created_at", "updated_at")}))
        return fieldsets

    @admin.display(description=_("backend"), ordering="backend")
    def backend_name(self, obj):
        cls = backend_class_or_none(obj.backend)
        return getattr(cls, "channel_name", None) or obj.backend

    @admin.display(description=_("quiet hours"))
    def quiet_hours(self, obj):
        if obj.quiet_hours_start is None:
            return "-"
        return f"{obj.quiet_hours_start:%H:%M}–{obj.quiet_hours_end:%H:%M}"

    @admin.display(description=_("campaigns"), ordering="campaign_total")
    def campaign_count(self, obj):
        return getattr(obj, "campaign_total", "-")

    @admin.display(description=_("inbound webhook URL"))
    def inbound_url(self, obj):
        if obj is None or obj.pk is None:
            return "-"
        try:
            path = reverse(
                "oscar_journeys:channel-inbound", kwargs={"channel_id": obj.pk, "inbound_token": obj.inbound_token}
            )
        except NoReverseMatch:
            return _("Include oscar_journeys.urls in the project's URLs to receive replies and bounces.")
        from ..services.rendering import absolute_url, site_url

        return format_html(
            "<code>{}</code><br>{}",
            absolute_url(site_url(), path),
            _("Give this URL to the provider for replies (STOP), bounces and complaints. It contains a secret token."),
        )

    @admin.action(description=_("Send a test message"), permissions=["change"])
    def send_test(self, request, queryset):
        channels = list(queryset[:2])
        if len(channels) != 1:
            self.message_user(request, _("Choose one channel to test."), messages.ERROR)
            return None
        channel = channels[0]
        form = TestMessageForm(request.POST if "address" in request.POST else None)
        if form.is_bound and form.is_valid():
            try:
                provider_id = send_test_message(channel, form.cleaned_data["address"])
            except (JourneysError, ValidationError) as exc:
                logger.info("test message through channel %s failed: %s", channel.pk, exc)
                self.message_user(request, _("The test failed: %(error)s") % {"error": exc}, messages.ERROR)
            else:
                self.message_user(
                    request,
                    _("Sent a test message through %(name)s (provider's id: %(id)s).")
                    % {"name": channel.name, "id": provider_id or "-"},
                    messages.SUCCESS,
                )
            return None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Send a test message through %(name)s") % {"name": channel.name},
            "subtitle": None,
            "form": form,
            "channel": channel,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/oscar_journeys/channel/send_test.html", context)

    # --- the add page: choose the backend first -------------------------------------------

    def add_view(self, request, form_url="", extra_context=None):
        if request.method == "GET" and self._backend(request, None) is None:
            return self.choose_backend_view(request)
        return super().add_view(request, form_url, extra_context)

    def choose_backend_view(self, request):
        add_url = reverse("admin:oscar_journeys_channel_add")
        groups = []
        for kind, label in KIND_CHOICES:
            backends = [(name, f"{add_url}?{urlencode({'backend': path})}", path) for path, name in backend_choices(kind)]
            if backends:
                groups.append((label, backends))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Add a channel: choose its backend"),
            "subtitle": None,
            "groups": groups,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/oscar_journeys/channel/choose_backend.html", context)

    # --- saving ---------------------------------------------------------------------------

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        cls = form.backend_class
        # A secret neither typed in nor kept was made by the backend: show it this once.
        for name in sorted(set(obj.secrets or {}) - form.given_secrets - form.kept_secrets):
            label = cls.option_fields()[name].label if cls and name in cls.option_fields() else name
            self.message_user(
                request,
                SECRET_SHOWN_ONCE % {"channel": obj.name, "option": label, "value": obj.secrets[name]},
                messages.WARNING,
            )

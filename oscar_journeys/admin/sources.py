"""Event sources (systems that send events through the API) and their tokens.

A token is generated when the source is created, or rotated, and shown once to the staff
user through a message; only its hash is stored and the hash is never displayed."""

from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from ..models import EventSource

TOKEN_MESSAGE = _(
    "The API token of the event source “%(name)s” is %(token)s — copy it now: it is shown "
    "only this once."
)


@admin.register(EventSource)
class EventSourceAdmin(admin.ModelAdmin):
    list_display = ("name", "is_active", "token_prefix", "created_at", "last_used_at")
    list_filter = ("is_active",)
    search_fields = ("name",)
    actions = ("rotate_token",)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("name",)
        return ("name", "is_active", "token_prefix", "created_at", "last_used_at")

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        # The name is stored on every event the source sent: renaming would orphan them.
        return ("name", "token_prefix", "created_at", "last_used_at")

    def _show_token(self, request, source, token):
        self.message_user(request, TOKEN_MESSAGE % {"name": source.name, "token": token}, messages.WARNING)

    def save_model(self, request, obj, form, change):
        token = None if change else obj.set_new_token()
        super().save_model(request, obj, form, change)
        if token:
            self._show_token(request, obj, token)

    @admin.action(description=_("Rotate token (the old one stops working)"), permissions=["change"])
    def rotate_token(self, request, queryset):
        for source in queryset.order_by("name"):
            token = source.set_new_token()
            source.save(update_fields=["token_hash", "token_prefix"])
            self._show_token(request, source, token)

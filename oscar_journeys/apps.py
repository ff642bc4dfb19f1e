from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class JourneysConfig(AppConfig):
    name = "oscar_journeys"
    label = "oscar_journeys"
    verbose_name = _("Customer journeys")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import checks  # noqa: F401  (registers the system checks)
        from .inbound import connect_inbound_receivers
        from .receivers import connect_receivers

        connect_receivers()
        connect_inbound_receivers()

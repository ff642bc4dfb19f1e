"""``manage.py journeys_setup_defaults [--inactive] [--language CODE]``: create the starter
set (an email channel, frequency caps, an exclusion rule and four campaigns with their
templates) where it is missing. See ``oscar_journeys.defaults``."""

from django.conf import settings
from django.core.management.base import CommandError
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ...defaults import setup_defaults
from ..base import JourneysCommand


class Command(JourneysCommand):
    help = gettext_lazy(
        "Create the starter set where it is missing: an email channel on the shop's email settings, "
        "frequency caps, an exclusion rule and campaigns for cart abandonment, after a purchase, birthday "
        "and win-back, with email templates written in the shop's language. Running it again creates nothing new."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--inactive",
            action="store_true",
            help=gettext_lazy("Create the campaigns inactive (activate them in the admin)."),
        )
        parser.add_argument(
            "--language",
            metavar="CODE",
            help=gettext_lazy("Language of the names and templates, e.g. es or pt-br (default: LANGUAGE_CODE)."),
        )

    def handle(self, *args, inactive=False, language=None, **options):
        language = language or settings.LANGUAGE_CODE
        if not translation.check_for_language(language):
            raise CommandError(
                _("No translation for the language %(code)r: give a code such as es or pt-br.") % {"code": language}
            )
        with translation.override(language):
            created = setup_defaults(active=not inactive)
            lines = [
                (_("Created the channel %(name)s."), created["channels"]),
                (_("Created the frequency cap %(name)s."), created["frequency_caps"]),
                (_("Created the exclusion rule %(name)s."), created["exclusion_rules"]),
                (
                    _("Created the campaign %(name)s (inactive).") if inactive else _("Created the campaign %(name)s."),
                    created["campaigns"],
                ),
                (_("Left the campaign %(name)s alone: one with its trigger or name exists."), created["skipped_campaigns"]),
                (_("Created the self-optimizing journey %(name)s."), created["journeys"]),
            ]
            for message, names in lines:
                for name in names:
                    self.stdout.write(message % {"name": f"“{name}”"})
            total = sum(len(created[key]) for key in ("channels", "frequency_caps", "exclusion_rules", "campaigns", "journeys"))
            if total:
                self.stdout.write(self.style.SUCCESS(_("Done: edit them in the admin, under Campaigns and Channels.")))
            else:
                self.stdout.write(self.style.SUCCESS(_("Nothing to create: the starter set is in place.")))

"""``manage.py journeys_create_source NAME [--rotate]``: create an event source (or give an
existing one a new token) and print its token, once."""

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.core.validators import validate_slug
from django.db import transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from oscar_journeys.management.base import JourneysCommand
from oscar_journeys.models import EventSource
from oscar_journeys.models.sources import RESERVED_NAMES



class Command(JourneysCommand):
    help = gettext_lazy(
        "Create an event source that may send events through the API (or give an existing one a new "
        "token with --rotate). The token is printed once; only its hash is stored. With --verbosity 0 only "
        "the token is printed."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help=gettext_lazy("Name stored on each event of the source, e.g. pos or app."))
        parser.add_argument(
            "--rotate",
            action="store_true",
            help=gettext_lazy("Give an existing source a new token; the old one stops working."),
        )

    def handle(self, *args, name, rotate, **options):
        try:
            validate_slug(name)
        except ValidationError:
            raise CommandError(
                _("%(name)r is not a valid source name: use letters, numbers, underscores or hyphens.") % {"name": name}
            )
        if name in RESERVED_NAMES:
            raise CommandError(
                _("%(name)r is the name of the shop's own events; choose another name for the source.") % {"name": name}
            )
        max_length = EventSource._meta.get_field("name").max_length
        if len(name) > max_length:
            raise CommandError(_("A source name has at most %(max)d characters.") % {"max": max_length})
        with transaction.atomic():
            source = EventSource.objects.select_for_update().filter(name=name).first()
            if source is None and rotate:
                raise CommandError(
                    _("There is no event source named %(name)r; leave out --rotate to create it.") % {"name": name}
                )
            if source is not None and not rotate:
                raise CommandError(
                    _("An event source named %(name)r exists already; add --rotate to give it a new token.")
                    % {"name": name}
                )
            if source is None:
                source = EventSource(name=name)
                token = source.set_new_token()
                source.save()
                message = _("Created the event source %(name)r. Its token, shown only this once:")
            else:
                token = source.set_new_token()
                source.save(update_fields=["token_hash", "token_prefix"])
                message = _(
                    "Gave the event source %(name)r a new token; the old one no longer works. Shown only this once:"
                )
        # With --verbosity 0 only the token is printed (for scripts).
        if options["verbosity"] >= 1:
            self.stdout.write(message % {"name": name})
        self.stdout.write(token)
        if options["verbosity"] >= 1:
            self.stdout.write(_('Send it in the header "Authorization: Token <token>".'))

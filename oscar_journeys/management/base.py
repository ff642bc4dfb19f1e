from django.core.management.base import BaseCommand


class JourneysCommand(BaseCommand):
    """Base of the app's commands: ``help`` may be a lazy translation (argparse needs a str)."""

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.description = str(self.help)
        return parser


def add_as_of_argument(parser, help):
    """The ``--as-of YYYY-MM-DD`` option (read it with ``parse_shop_day``)."""
    parser.add_argument("--as-of", dest="as_of", metavar="YYYY-MM-DD", help=help)


def parse_shop_day(value):
    """The day an ``--as-of YYYY-MM-DD`` option names (default: yesterday in the shop's time
    zone); a clear error for text that is not a date or a day in the future."""
    import datetime as dt

    from django.core.management.base import CommandError
    from django.utils.translation import gettext as _

    from ..services.snapshots import shop_today, shop_yesterday

    if value is None:
        return shop_yesterday()
    try:
        day = dt.date.fromisoformat(value.strip())
    except ValueError:
        raise CommandError(_("--as-of %(value)r is not a date: write it as YYYY-MM-DD.") % {"value": value})
    today = shop_today()
    if day > today:
        raise CommandError(
            _("--as-of %(value)s is in the future (today is %(today)s in the shop's time zone).")
            % {"value": day, "today": today}
        )
    return day

"""``manage.py journeys_snapshot --as-of YYYY-MM-DD [--backfill DAYS]``: build daily
feature snapshots now, in this process (the nightly Celery task does the same in shards)."""

import datetime as dt

from django.core.management.base import CommandError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ... import app_settings
from ...services.snapshots import snapshot_build
from ..base import JourneysCommand, add_as_of_argument, parse_shop_day


class Command(JourneysCommand):
    help = gettext_lazy(
        "Compute the customers' feature snapshots as of the end of a day (in the shop's time zone) "
        "and replace the stored ones for that day."
    )

    def add_arguments(self, parser):
        add_as_of_argument(parser, gettext_lazy("Day to snapshot (default: yesterday in the shop's time zone)."))
        parser.add_argument(
            "--backfill",
            dest="backfill",
            metavar="DAYS",
            default="0",
            help=gettext_lazy("Also rebuild this many days before --as-of (default: 0)."),
        )

    def handle(self, *args, as_of=None, backfill="0", **options):
        day = parse_shop_day(as_of)
        backfill_days = self._parse_backfill(backfill)
        first = day - dt.timedelta(days=backfill_days)
        self.stdout.write(
            _("Building snapshots from %(first)s to %(last)s (%(days)d days), %(size)d customer ids per shard.")
            % {"first": first, "last": day, "days": backfill_days + 1, "size": app_settings.SNAPSHOT_SHARD_SIZE}
        )
        result = snapshot_build(as_of=day, backfill_days=backfill_days, progress=self._progress)
        if not result.shards:
            self.stdout.write(_("No customer has events before the end of %(day)s: nothing to build.") % {"day": day})
        self.stdout.write(
            self.style.SUCCESS(
                _(
                    "Wrote %(rows)d snapshot rows for %(days)d days in %(seconds).1f s "
                    "(read %(read).1f s, compute %(compute).1f s, write %(write).1f s)."
                )
                % {
                    "rows": result.rows,
                    "days": len(result.days),
                    "seconds": result.seconds,
                    "read": result.read_seconds,
                    "compute": result.compute_seconds,
                    "write": result.write_seconds,
                }
            )
        )

    def _progress(self, step):
        lo, hi = step.customer_range
        self.stdout.write(
            _("Shard %(shard)d/%(shards)d (customer ids %(lo)d to %(hi)d):")
            % {"shard": step.shard, "shards": step.shards, "lo": lo, "hi": hi - 1}
        )
        for day, rows in step.rows_per_day.items():
            self.stdout.write(_("  %(day)s: %(rows)d rows") % {"day": day, "rows": rows})

    def _parse_backfill(self, value):
        try:
            days = int(str(value).strip())
        except ValueError:
            days = -1
        if days < 0:
            raise CommandError(
                _("--backfill %(value)r is not a number of days: give a whole number, 0 or more.") % {"value": value}
            )
        return days

"""``manage.py journeys_demo_data``: fill the demo shop with a catalogue and customers with
days of realistic history. See docs/demo.md."""

import time
from datetime import datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext as _

from ...demo.catalogue import catalogue_ensure
from ...demo.history import HistoryWriter
from ...demo.plan import plan_history

BATCH = 25  # customers written per transaction


def parse_now(value):
    """An ISO date or date-time; a naive one is read in the current time zone."""
    moment = parse_datetime(value)
    if moment is None:
        day = parse_date(value)
        if day is None:
            raise ValueError(value)
        moment = datetime(day.year, day.month, day.day)
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


class Command(BaseCommand):
    @property
    def help(self):  # argparse wants a str: translated when the parser is built
        return _(
            "Fill the shop with a demo sportswear catalogue and customers with days of history "
            "(orders, baskets, views, searches, log-ins). The same seed and --now give the same data."
        )

    def add_arguments(self, parser):
        parser.add_argument("--customers", type=int, default=200, help=_("Customers to create (default 200)."))
        parser.add_argument("--days", type=int, default=180, help=_("Days of history (default 180)."))
        parser.add_argument("--seed", type=int, default=0, help=_("Random seed, 0 or more (default 0)."))
        parser.add_argument(
            "--now",
            help=_("End of the history: an ISO date or date-time such as 2025-06-30T18:00 (default: now)."),
        )
        parser.add_argument("--quiet", action="store_true", help=_("Print only the summary."))

    def handle(self, *args, customers, days, seed, now, quiet, **options):
        if customers < 1:
            raise CommandError(_("--customers must be at least 1 (got %(value)s).") % {"value": customers})
        if days < 1:
            raise CommandError(_("--days must be at least 1 (got %(value)s).") % {"value": days})
        if seed < 0:
            raise CommandError(_("--seed must be 0 or more (got %(value)s).") % {"value": seed})
        if now is None:
            now = timezone.now()
        else:
            try:
                now = parse_now(now)
            except ValueError:
                raise CommandError(
                    _("--now must be an ISO date or date-time such as 2025-06-30T18:00 (got %(value)r).")
                    % {"value": now}
                )
        started = time.monotonic()

        products, created = catalogue_ensure()
        self.stdout.write(
            _("Catalogue: %(total)s products (%(created)s new).") % {"total": len(products), "created": created}
        )
        self.stdout.write(
            _("History: %(customers)s customers, %(days)s days up to %(now)s, seed %(seed)s.")
            % {"customers": customers, "days": days, "now": timezone.localtime(now).isoformat(timespec="seconds"),
               "seed": seed}
        )
        writer = HistoryWriter(seed=seed, products=products)
        if writer.cancel_path is None:
            self.stdout.write(self.style.WARNING(
                _("Orders will not be cancelled: OSCAR_ORDER_STATUS_PIPELINE has no way to the status %(status)r. "
                  "See docs/demo.md.") % {"status": writer.cancelled}
            ))
        if writer.return_path is None:
            self.stdout.write(self.style.WARNING(
                _("No order line will be returned: OSCAR_LINE_STATUS_PIPELINE has no way to the status %(status)r. "
                  "See docs/demo.md.") % {"status": writer.returned}
            ))

        plans = plan_history(
            seed=seed, customers=customers, days=days, now=now, products=products, tz=timezone.get_current_timezone()
        )
        batch, done, next_report = [], 0, 0.1
        for plan in plans:
            batch.append(plan)
            if len(batch) == BATCH or plan.index == customers - 1:
                writer.write(batch)
                done += len(batch)
                batch = []
                if not quiet and (done / customers >= next_report or done == customers):
                    self.stdout.write(
                        _("%(done)s/%(total)s customers (%(percent)d%%), %(orders)s orders, %(seconds).1f s")
                        % {"done": done, "total": customers, "percent": 100 * done // customers,
                           "orders": writer.stats["orders"], "seconds": time.monotonic() - started}
                    )
                    while next_report <= done / customers:
                        next_report += 0.1
        self.report(writer.stats, time.monotonic() - started, seed)

    def report(self, stats, seconds, seed):
        if stats["skipped"]:
            self.stdout.write(
                _("%(count)s customers of seed %(seed)s were already here and were left as they are.")
                % {"count": stats["skipped"], "seed": seed}
            )
        self.stdout.write(self.style.SUCCESS(
            _("Created %(accounts)s customers with accounts and %(guests)s guests (%(birthdays)s with a birthday), "
              "%(orders)s orders (%(cancelled)s cancelled, %(returned)s with a returned line), %(baskets)s open "
              "baskets and %(events)s other events in %(seconds).1f s.")
            % {"accounts": stats["accounts"], "guests": stats["guests"], "birthdays": stats["with_birthday"],
               "orders": stats["orders"], "cancelled": stats["cancelled"], "returned": stats["returned"],
               "baskets": stats["open_baskets"], "events": stats["events"], "seconds": seconds}
        ))

"""``manage.py journeys_run [--now ISO-TIME]``: one round of the whole loop in this process
(new triggers, exits, decisions, sending, attribution) and its counts. For shops without
Celery beat (run it from cron every few minutes), and for tests and demos with a clock."""

from django.core.management.base import CommandError
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ...models import Decision
from ..base import JourneysCommand
from .journeys_demo_data import parse_now

LABELS = {
    "enrolled": gettext_lazy("New enrollments"),
    "exited": gettext_lazy("Enrollments exited"),
    "due": gettext_lazy("Steps due"),
    "decisions": gettext_lazy("Decisions"),
    "deferred": gettext_lazy("Deferred (quiet hours, send window)"),
    "completed": gettext_lazy("Enrollments completed"),
    "messages": gettext_lazy("Messages queued"),
    "busy_shards": gettext_lazy("Customer groups left to a round already running"),
    "sent": gettext_lazy("Messages sent"),
    "failed": gettext_lazy("Messages failed"),
    "retried": gettext_lazy("Messages to retry later"),
    "cancelled": gettext_lazy("Messages cancelled (consent withdrawn, suppressed)"),
    "stuck_failed": gettext_lazy("Messages stuck in sending, marked failed"),
    "attributed": gettext_lazy("Decisions with newly attributed orders"),
    "closed": gettext_lazy("Attribution windows closed"),
    "seconds": gettext_lazy("Seconds"),
}


def label(key):
    """The translated label of one count of ``services.loop.journeys_run``."""
    if key in LABELS:
        return str(LABELS[key])
    if key.startswith("decisions_"):
        code = key.removeprefix("decisions_")
        return "  " + _("decisions: %(outcome)s") % {"outcome": dict(Decision.OUTCOME_CHOICES).get(code, code)}
    if key.startswith("skipped_"):
        code = key.removeprefix("skipped_")
        return "  " + _("skipped: %(reason)s") % {"reason": dict(Decision.REASON_CHOICES).get(code, code)}
    return key


class Command(JourneysCommand):
    help = gettext_lazy(
        "Run one round of the campaigns in this process: find new triggers, let due customers leave or "
        "go on, decide the due steps, send the messages and attribute orders; then print the counts."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--now",
            metavar="ISO-TIME",
            help=gettext_lazy("The time of the round, e.g. 2025-06-30T18:00 (default: now; a time without zone is local)."),
        )

    def handle(self, *args, now=None, **options):
        from ...services.loop import journeys_run

        if now is None:
            moment = timezone.now()
        else:
            try:
                moment = parse_now(now)
            except ValueError:
                raise CommandError(
                    _("--now must be an ISO date or date-time such as 2025-06-30T18:00 (got %(value)r).") % {"value": now}
                )
        counts = journeys_run(now=moment)
        self.stdout.write(
            _("Round at %(now)s:") % {"now": timezone.localtime(moment).isoformat(timespec="seconds")}
        )
        for key, value in counts.items():
            if isinstance(value, dict):
                for sub, count in value.items():
                    self.stdout.write(f"  {label(key)} / {sub}: {count}")
                continue
            self.stdout.write(_("%(label)s: %(value)s") % {"label": label(key), "value": value})

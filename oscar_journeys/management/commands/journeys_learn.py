"""``manage.py journeys_learn [--now ISO-TIME]``: fit a new version of the self-optimizing
policy from the decisions whose attribution window closed since the last version, and show
what it learned. Beat runs the same as ``tasks.policy_learn`` every night."""

from django.core.management.base import CommandError
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..base import JourneysCommand
from .journeys_demo_data import parse_now


class Command(JourneysCommand):
    help = gettext_lazy(
        "Fit a new version of the self-optimizing policy from the decisions whose attribution window has "
        "closed since the last version, and print what it learned per campaign."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--now",
            metavar="ISO-TIME",
            help=gettext_lazy("The time to learn at, e.g. 2025-06-30T18:00 (default: now; a time without zone is local)."),
        )

    def handle(self, *args, now=None, **options):
        from ...models import Campaign, PolicyVersion
        from ...services.optimizing import policy_learn

        try:
            moment = timezone.now() if now is None else parse_now(now)
        except ValueError:
            raise CommandError(
                _("--now must be an ISO date or date-time such as 2025-06-30T18:00 (got %(value)r).") % {"value": now}
            )
        run = policy_learn(now=moment)
        if run.status != PolicyVersion.SUCCEEDED:
            raise CommandError(_("Policy version %(version)d failed: %(error)s") % {"version": run.version, "error": run.error})
        self.stdout.write(
            _("Policy version %(version)d learned from %(count)d decisions.") % {"version": run.version, "count": run.outcomes}
        )
        names = dict(Campaign.objects.values_list("pk", "name"))
        for row in run.summary:
            self.stdout.write(
                _("  %(campaign)s: %(treated)d sent, %(control)d got nothing; incremental value per send "
                  "%(uplift).2f (sd %(sd).2f)")
                % {
                    "campaign": names.get(row["campaign_id"], row["campaign_id"]),
                    "treated": row["n_treated"], "control": row["n_control"],
                    "uplift": row["uplift"] or 0.0, "sd": row["uplift_sd"] or 0.0,
                }
            )

"""``manage.py journeys_nightly [--as-of YYYY-MM-DD] [--no-training]``: the nightly chain
in this process: fit the segment and prediction models on a sample, then build and score
every customer's snapshot of the day, with a progress bar (``tasks.nightly_run`` does the
same with Celery workers sharing the shards)."""

import sys

from django.core.management.base import CommandError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ...models import TrainingRun
from ...services.nightly import latest_models, models_of, nightly_train
from ...services.snapshots import snapshot_build
from ..base import JourneysCommand, add_as_of_argument, parse_shop_day

BAR_WIDTH = 30


class Command(JourneysCommand):
    help = gettext_lazy(
        "Run the nightly chain for a day: fit the segment and prediction models, then build every "
        "customer's snapshot with their lifecycle stage, RFM, micro-segment, churn probability and lifetime value."
    )

    def add_arguments(self, parser):
        add_as_of_argument(parser, gettext_lazy("Day to run for (default: yesterday in the shop's time zone)."))
        parser.add_argument(
            "--no-training",
            dest="training",
            action="store_false",
            help=gettext_lazy("Score with the latest successful training run instead of fitting new models."),
        )

    def handle(self, *args, as_of=None, training=True, **options):
        day = parse_shop_day(as_of)
        if training:
            self.stdout.write(_("Fitting the models as of %(day)s...") % {"day": day})
            try:
                run = nightly_train(as_of=day)
            except Exception as exc:
                raise CommandError(_("The training failed: %(error)s") % {"error": exc}) from exc
            self._report(run)
            models = models_of(run.version)
        else:
            models = latest_models()
            if models is None:
                raise CommandError(_("There is no successful training run yet: run without --no-training."))
        self.stdout.write(_("Scoring every customer's snapshot of %(day)s:") % {"day": day})
        result = snapshot_build(as_of=day, models=models, progress=self._progress)
        if self._tty:
            self.stdout.write("")
        self.stdout.write(
            self.style.SUCCESS(
                _(
                    "Wrote %(rows)d snapshot rows scored by training run %(version)d, %(changes)d stage changes, in "
                    "%(seconds).1f s (read %(read).1f s, features %(compute).1f s, scores %(score).1f s, write %(write).1f s)."
                )
                % {
                    "rows": result.rows,
                    "version": models.version,
                    "changes": result.stage_changes,
                    "seconds": result.seconds,
                    "read": result.read_seconds,
                    "compute": result.compute_seconds,
                    "score": result.score_seconds,
                    "write": result.write_seconds,
                }
            )
        )

    @property
    def _tty(self):
        return getattr(self.stdout, "isatty", lambda: False)() or getattr(sys.stdout, "isatty", lambda: False)()

    def _report(self, run):
        metrics, skipped = run.metrics, run.params.get("skipped", {})
        self.stdout.write(
            _("Training run %(version)d: %(customers)d customers in the sample, %(seconds)s s.")
            % {"version": run.version, "customers": run.customers, "seconds": metrics.get("seconds")}
        )
        lines = {
            "churn_auc": _("churn AUC %(value).3f (recency rule %(other).3f), Brier score %(brier).3f"),
            "clv_orders_mae": _("CLV holdout: mean absolute error %(value).2f orders, %(other).2f in value"),
            "segments": _("%(value)d micro-segments, silhouette %(other).2f"),
        }
        others = {"churn_auc": "recency_auc", "clv_orders_mae": "clv_value_mae", "segments": "silhouette"}
        for key, line in lines.items():
            if metrics.get(key) is not None:
                self.stdout.write(
                    "  " + line % {"value": metrics[key], "other": metrics.get(others[key]) or 0.0,
                                   "brier": metrics.get("churn_brier") or 0.0}
                )
        for name, reason in skipped.items():
            self.stdout.write(self.style.WARNING(_("  %(model)s left out: %(reason)s") % {"model": name, "reason": reason}))
        if run.status != TrainingRun.SUCCEEDED:
            raise CommandError(run.error)

    def _progress(self, step):
        done = round(BAR_WIDTH * step.shard / step.shards)
        bar = "#" * done + "-" * (BAR_WIDTH - done)
        line = _("[%(bar)s] shard %(shard)d/%(shards)d, %(rows)d rows") % {
            "bar": bar, "shard": step.shard, "shards": step.shards, "rows": sum(step.rows_per_day.values()),
        }
        if self._tty:
            self.stdout.write("\r" + line, ending="")
            self.stdout.flush()
        else:
            self.stdout.write(line)

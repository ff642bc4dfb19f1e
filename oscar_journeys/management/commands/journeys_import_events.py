"""``manage.py journeys_import_events FILE.csv --source NAME [--dry-run] [--delimiter ,]``

Imports events from a CSV file whose header names the same fields as the API (see
docs/csv-import.md). All or nothing: every row is validated first; if any is rejected, each
rejected row is printed with its line number (the header is line 1) and nothing is imported.
Otherwise all rows are recorded in one transaction, in batches, reading the file as a stream.
Rows already imported (same source and event_id, same content) are counted as duplicates,
so importing a file again creates nothing new.
"""

import csv
from itertools import islice

from django.core.management.base import CommandError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from oscar_journeys.exceptions import InvalidEventError
from oscar_journeys.management.base import JourneysCommand
from oscar_journeys.models import EventSource
from oscar_journeys.services.ingest import (
    CONFLICT,
    CREATED,
    DUPLICATE,
    REJECTED,
    STATUSES,
    Rules,
    event_clean,
    events_ingest,
)
from oscar_journeys.services.ingest_validation import FIELDS, IDENTIFIER_FIELDS, REQUIRED_FIELDS

DELIMITER_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}


class _Rollback(Exception):
    """Leaves the import transaction without keeping anything (dry run, or a failed row)."""


def read_rows(path, delimiter):
    """Yield ``(line, item, errors)`` for each data row of the CSV file at ``path``: ``line``
    is where the row starts (the header is line 1), ``item`` a dict of its non-empty values
    by column, ``errors`` a dict when the row itself is malformed (then ``item`` is None).
    Raises CommandError for a file that cannot be read or a bad header."""
    last_line = 1
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, delimiter=delimiter, strict=True)
            columns = _check_header(path, next(reader, None))
            last_line = reader.line_num
            for row in reader:
                line, last_line = last_line + 1, reader.line_num
                if not row:
                    continue  # a blank line
                if len(row) != len(columns):
                    message = _("the row has %(count)d values but the header has %(columns)d columns.") % {
                        "count": len(row),
                        "columns": len(columns),
                    }
                    yield line, None, {"row": message}
                    continue
                yield line, {column: value for column, value in zip(columns, row) if value.strip()}, None
    except OSError as error:
        raise CommandError(_("Cannot read %(path)s: %(error)s") % {"path": path, "error": error.strerror or error})
    except UnicodeDecodeError:
        raise CommandError(
            _("%(path)s is not UTF-8 text (after line %(line)d); save it as CSV UTF-8 and try again.")
            % {"path": path, "line": last_line}
        )
    except csv.Error as error:
        raise CommandError(
            _("%(path)s is not valid CSV near line %(line)d: %(error)s")
            % {"path": path, "line": last_line + 1, "error": error}
        )


def _check_header(path, header):
    if header is None:
        raise CommandError(_("%(path)s is empty: the first line must be a header naming the columns.") % {"path": path})
    columns = [name.strip().lower() for name in header]
    if not any(columns):
        raise CommandError(_("The first line of %(path)s must be a header naming the columns.") % {"path": path})
    problems = []
    unknown = [name for name in columns if name not in FIELDS]
    if unknown:
        problems.append(
            _("unknown column(s): %(unknown)s (the columns are: %(fields)s)")
            % {"unknown": ", ".join(repr(name) for name in unknown), "fields": ", ".join(FIELDS)}
        )
    repeated = sorted({name for name in columns if columns.count(name) > 1})
    if repeated:
        problems.append(_("repeated column(s): %(names)s") % {"names": ", ".join(repr(name) for name in repeated)})
    missing = [name for name in REQUIRED_FIELDS if name not in columns]
    if missing:
        problems.append(_("missing required column(s): %(names)s") % {"names": ", ".join(missing)})
    if not any(name in columns for name in IDENTIFIER_FIELDS):
        problems.append(_("there must be at least one of the columns email, phone or external_id"))
    if problems:
        raise CommandError(
            _("The header of %(path)s is not right: %(problems)s.") % {"path": path, "problems": "; ".join(problems)}
        )
    return columns


class Command(JourneysCommand):
    help = gettext_lazy(
        "Import events from a CSV file with a header row naming the API's fields (event_id, type, occurred_at, "
        "email/phone/external_id, ...). Validates every row first and imports nothing if any row is rejected."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help=gettext_lazy("Path of the CSV file (UTF-8)."))
        parser.add_argument(
            "--source", required=True, help=gettext_lazy("Name of the event source (see journeys_create_source).")
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help=gettext_lazy("Check the file and count what would be imported, writing nothing."),
        )
        parser.add_argument(
            "--delimiter", default=",", help=gettext_lazy("Column separator: one character, or 'tab' (default ',').")
        )
        parser.add_argument(
            "--batch-size", type=int, default=500, help=gettext_lazy("Rows recorded per batch (default 500).")
        )

    def handle(self, *args, file, source, dry_run, delimiter, batch_size, **options):
        delimiter = DELIMITER_NAMES.get(delimiter.lower(), delimiter)
        if len(delimiter) != 1:
            raise CommandError(_("--delimiter must be one character (or 'tab'), not %(value)r.") % {"value": delimiter})
        if batch_size < 1:
            raise CommandError(_("--batch-size must be at least 1."))
        event_source = self.get_source(source)
        now = timezone.now()

        total, rejected = self.validate(file, delimiter, now)
        if rejected:
            raise CommandError(
                _("%(rejected)d of %(total)d rows were rejected (listed above); nothing was imported.")
                % {"rejected": rejected, "total": total}
            )
        if not total:
            self.stdout.write(_("%(path)s has no rows after the header; nothing to import.") % {"path": file})
            return

        counts, failures = self.record(file, delimiter, event_source, now, dry_run, batch_size)
        if failures:
            for line, errors in failures:
                self.stderr.write(self.describe(line, errors))
            raise CommandError(
                _("%(count)d of %(total)d rows could not be recorded (listed above); nothing was imported.")
                % {"count": len(failures), "total": total}
            )
        values = {"created": counts[CREATED], "duplicates": counts[DUPLICATE], "total": total}
        if dry_run:
            message = _(
                "Dry run: %(total)d rows are valid; %(created)d events would be created and %(duplicates)d are "
                "already stored. Nothing was written."
            )
        else:
            message = _("Imported %(total)d rows: %(created)d events created, %(duplicates)d already stored.")
        self.stdout.write(self.style.SUCCESS(message % values))

    def get_source(self, name):
        source = EventSource.objects.filter(name=name).first()
        if source is None:
            raise CommandError(
                _("There is no event source named %(name)r. Create it with: manage.py journeys_create_source %(name)s")
                % {"name": name}
            )
        if not source.is_active:
            raise CommandError(_("The event source %(name)r is disabled.") % {"name": name})
        return source

    def describe(self, line, errors):
        return _("Line %(line)d: %(errors)s") % {"line": line, "errors": " ".join(errors.values())}

    def validate(self, path, delimiter, now):
        """First pass, without the database: print each rejected row; return (rows, rejected)."""
        rules = Rules.at(now)
        total = rejected = 0
        for line, item, errors in read_rows(path, delimiter):
            total += 1
            if errors is None:
                try:
                    event_clean(item, rules=rules)
                except InvalidEventError as error:
                    errors = error.errors
            if errors:
                rejected += 1
                self.stderr.write(self.describe(line, errors))
        return total, rejected

    def record(self, path, delimiter, source, now, dry_run, batch_size):
        """Second pass: record every row in one transaction, rolled back on a dry run or when
        a row cannot be recorded (a conflict with a stored event, an unknown product).
        Returns ({status: count}, [(line, errors) of the rows that failed])."""
        counts, failures, customers = dict.fromkeys(STATUSES, 0), [], {}
        rows = read_rows(path, delimiter)
        try:
            with transaction.atomic():
                while chunk := list(islice(rows, batch_size)):
                    results = events_ingest(
                        source=source, items=[item for _line, item, _errors in chunk], now=now, customers=customers
                    )
                    for (line, _item, _errors), result in zip(chunk, results):
                        counts[result.status] += 1
                        if result.status in (REJECTED, CONFLICT):
                            failures.append((line, result.errors))
                if failures or dry_run:
                    raise _Rollback
        except _Rollback:
            pass
        return counts, failures

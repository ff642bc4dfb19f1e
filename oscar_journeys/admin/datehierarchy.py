"""A date drill-down (``date_hierarchy``) for tables too big to scan.

Django's drill-down asks the database for the distinct years, months or days that hold
rows (``SELECT DISTINCT date_trunc(...)``), which reads every row of the list: seconds on
ten million events. This one offers the calendar between the first and the last row
instead (some entries may hold nothing), and the admin supplies those two bounds cheaply
through ``date_hierarchy_bounds(cl)``. The result has the shape of Django's, so Django's
``admin/date_hierarchy.html`` renders it (see the ``journeys_date_hierarchy`` tag).
"""

import calendar
import datetime as dt

from django.utils import formats, timezone
from django.utils.text import capfirst
from django.utils.translation import gettext as _


def _local_date(value):
    if isinstance(value, dt.datetime):
        return timezone.localtime(value).date() if timezone.is_aware(value) else value.date()
    return value


def calendar_hierarchy(cl, bounds):
    """The drill-down of changelist ``cl`` within ``bounds`` = (first, last) (dates or
    datetimes, or (None, None) for an empty table)."""
    first, last = (_local_date(b) for b in bounds)
    if first is None or last is None:
        return {"show": False}
    field = cl.date_hierarchy
    year_field, month_field, day_field = (f"{field}__{part}" for part in ("year", "month", "day"))
    year, month, day = (cl.params.get(name) for name in (year_field, month_field, day_field))

    def link(filters):
        return cl.get_query_string(filters, [f"{field}__"])

    if not (year or month or day) and first.year == last.year:
        year = first.year
        if first.month == last.month:
            month = first.month

    if year and month and day:
        chosen = dt.date(int(year), int(month), int(day))
        return {
            "show": True,
            "back": {
                "link": link({year_field: year, month_field: month}),
                "title": capfirst(formats.date_format(chosen, "YEAR_MONTH_FORMAT")),
            },
            "choices": [{"title": capfirst(formats.date_format(chosen, "MONTH_DAY_FORMAT"))}],
        }
    if year and month:
        year, month = int(year), int(month)
        days = [dt.date(year, month, d) for d in range(1, calendar.monthrange(year, month)[1] + 1)]
        return {
            "show": True,
            "back": {"link": link({year_field: year}), "title": str(year)},
            "choices": [
                {
                    "link": link({year_field: year, month_field: month, day_field: d.day}),
                    "title": capfirst(formats.date_format(d, "MONTH_DAY_FORMAT")),
                }
                for d in days
                if first <= d <= last
            ],
        }
    if year:
        year = int(year)
        months = [dt.date(year, m, 1) for m in range(1, 13)]
        return {
            "show": True,
            "back": {"link": link({}), "title": _("All dates")},
            "choices": [
                {
                    "link": link({year_field: year, month_field: m.month}),
                    "title": capfirst(formats.date_format(m, "YEAR_MONTH_FORMAT")),
                }
                for m in months
                if first.replace(day=1) <= m <= last
            ],
        }
    return {
        "show": True,
        "back": None,
        "choices": [{"link": link({year_field: str(y)}), "title": str(y)} for y in range(first.year, last.year + 1)],
    }

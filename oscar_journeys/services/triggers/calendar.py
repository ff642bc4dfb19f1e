"""Triggers on the calendar: birthdays and scheduled sends. Dates are in the shop's time zone
(``TIME_ZONE``).

Birthday (``birthday``):
- a customer whose birthday is ``Campaign.days_before_birthday`` days after today; someone
  born on 29 February has it on 28 February in other years;
- a scan catches up ``BIRTHDAY_CATCH_UP_DAYS`` missed days (beat down for a day), never
  before the day the campaign was created or starts;
- triggered at the start of that day; key ``birthday:<year of the birthday>``; context ``{}``.

Scheduled (``scheduled``):
- occurrences at ``Campaign.send_at`` and, with ``recurrence``, every day / week / month
  after it at the same local time (monthly keeps the day of the month, clamped to the month's
  last day: 31 January, 28 February, 31 March...);
- a scan enrolls the latest occurrence that is due (``<= now``), not before the campaign
  starts, if no enrollment of the campaign has that time or a later one: occurrences missed
  while nothing ran are not sent one after another, only the latest;
- every canonical customer with an address (an email, a phone or a push token) enters;
  the audience, consent and the rest are applied when the message is due;
- triggered at the occurrence; key ``scheduled:<occurrence, ISO 8601>``; context ``{}``.
"""

import calendar
import datetime as dt

import pandas as pd
from django.db.models import Exists, Max, OuterRef, Q
from django.utils import timezone

from ...models import Customer, CustomerIdentifier, Enrollment
from ...models.campaigns import RECUR_DAILY, RECUR_MONTHLY, RECUR_WEEKLY
from .base import identified, occurrences

BIRTHDAY_CATCH_UP_DAYS = 2


def _birthdays_on(day):
    """Q on customers whose birthday falls on ``day`` (29 February on 28 February of a common
    year)."""
    q = Q(date_of_birth__month=day.month, date_of_birth__day=day.day)
    if day.month == 2 and day.day == 28 and not calendar.isleap(day.year):
        q |= Q(date_of_birth__month=2, date_of_birth__day=29)
    return q


def _start_of(day, tz):
    return dt.datetime.combine(day, dt.time.min, tzinfo=tz)


def find_birthdays(campaign, *, now, delay):
    tz = timezone.get_default_timezone()
    today = timezone.localdate(now, tz)
    since = campaign.created_at if campaign.starts_at is None else max(campaign.created_at, campaign.starts_at)
    first = max(today - dt.timedelta(days=BIRTHDAY_CATCH_UP_DAYS), timezone.localdate(since, tz))
    customers, keys, times = [], [], []
    people = Customer.objects.canonical().filter(identified(prefix=""))
    for offset in range((today - first).days + 1):
        day = first + dt.timedelta(days=offset)
        birthday = day + dt.timedelta(days=campaign.days_before_birthday)
        ids = list(people.filter(_birthdays_on(birthday)).values_list("pk", flat=True))
        customers += ids
        keys += [f"birthday:{birthday.year}"] * len(ids)
        times += [_start_of(day, tz)] * len(ids)
    return occurrences(customers, keys, times, [{} for _ in customers])


def _add_months(day, months):
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    return day.replace(year=year, month=month, day=min(day.day, calendar.monthrange(year, month)[1]))


def latest_occurrence(send_at, recurrence, now, tz=None):
    """The latest occurrence of a schedule that is ``<= now``, or None before the first."""
    if send_at is None or send_at > now:
        return None
    if not recurrence:
        return send_at
    tz = tz or timezone.get_default_timezone()
    first = send_at.astimezone(tz)
    wall, first_day, today = first.time().replace(tzinfo=None), first.date(), timezone.localdate(now, tz)

    def at(day):
        return dt.datetime.combine(day, wall, tzinfo=tz)

    if recurrence == RECUR_DAILY:
        step, days = 1, (today - first_day).days
    elif recurrence == RECUR_WEEKLY:
        step, days = 7, (today - first_day).days // 7 * 7
    elif recurrence == RECUR_MONTHLY:
        months = (today.year - first_day.year) * 12 + today.month - first_day.month
        while months > 0 and at(_add_months(first_day, months)) > now:
            months -= 1
        return at(_add_months(first_day, months)) if months else send_at
    else:
        raise ValueError(f"unknown recurrence {recurrence!r}")
    while days > 0 and at(first_day + dt.timedelta(days=days)) > now:
        days -= step
    return at(first_day + dt.timedelta(days=days)) if days > 0 else send_at


def find_scheduled(campaign, *, now, delay):
    occurrence = latest_occurrence(campaign.send_at, campaign.recurrence, now)
    if occurrence is None or (campaign.starts_at is not None and occurrence < campaign.starts_at):
        return occurrences()
    done = Enrollment.objects.filter(campaign=campaign).aggregate(last=Max("triggered_at"))["last"]
    if done is not None and done >= occurrence:
        return occurrences()
    push = CustomerIdentifier.objects.filter(customer_id=OuterRef("pk"), kind=CustomerIdentifier.PUSH)
    ids = list(
        Customer.objects.canonical()
        .filter(~Q(email="") | ~Q(phone="") | Exists(push))
        .values_list("pk", flat=True)
    )
    key = f"scheduled:{occurrence.astimezone(dt.timezone.utc).isoformat()}"
    return occurrences(
        pd.Series(ids, dtype="int64"),
        pd.Series([key] * len(ids), dtype=object),
        pd.Series([occurrence] * len(ids), dtype=object),
        pd.Series([{} for _ in ids], dtype=object),
    )

"""manage.py journeys_import_events: all or nothing, line numbers, re-import, header checks."""

from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from oscar_journeys.models import Customer, Event, EventSource

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
HEADER = "event_id,type,occurred_at,email,value\n"


def run(path, *args, source="pos"):
    out, err = StringIO(), StringIO()
    try:
        call_command("journeys_import_events", str(path), "--source", source, *args, stdout=out, stderr=err)
    except CommandError as error:
        return error, out.getvalue(), err.getvalue()
    return None, out.getvalue(), err.getvalue()


def write(tmp_path, text, name="events.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_text(text, encoding=encoding)
    return path


def test_good_file_is_imported(source):
    error, out, err = run(FIXTURES / "events_good.csv")
    assert error is None, err
    assert "4 events created, 0 already stored" in out
    assert Event.objects.filter(source="pos").count() == 4
    order = Event.objects.get(idempotency_key="pos-1001")
    assert (order.value, order.currency, order.payload) == (Decimal("59.90"), "EUR", {"store": "Madrid 2", "till": 4})
    assert order.customer.email == "ana.garcia@example.com" and order.customer.last_name == "García"
    assert Event.objects.get(idempotency_key="pos-1003").payload == {"note": "gift", "till": 2}
    # The two rows for external id C-77 are one customer; Ana's two rows another.
    assert Customer.objects.count() == 2
    assert Event.objects.get(idempotency_key="pos-1004").customer.phone == "+5511987654321"


def test_reimport_creates_nothing_new(source):
    run(FIXTURES / "events_good.csv")
    error, out, _err = run(FIXTURES / "events_good.csv")
    assert error is None
    assert "0 events created, 4 already stored" in out
    assert Event.objects.count() == 4 and Customer.objects.count() == 2


def test_bad_rows_are_listed_with_line_numbers_and_nothing_is_imported(source):
    error, _out, err = run(FIXTURES / "events_bad.csv")
    assert "4 of 6 rows were rejected" in str(error) and "nothing was imported" in str(error)
    lines = err.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["Line 3", "Line 4", "Line 7", "Line 8"]
    assert "'order_sent'" in lines[0]
    assert "no UTC offset" in lines[1] and "'not-an-email'" in lines[1]
    for fragment in ("'ten'", "'EURO'", "JSON object", "email, phone or external_id"):
        assert fragment in lines[2]
    assert "event_id is required" in lines[3]
    assert not Event.objects.exists() and not Customer.objects.exists()


def test_dry_run_writes_nothing(source):
    error, out, _err = run(FIXTURES / "events_good.csv", "--dry-run")
    assert error is None
    assert "4 events would be created" in out
    assert not Event.objects.exists() and not Customer.objects.exists()


def test_conflict_with_stored_event_is_reported_and_nothing_is_imported(source, tmp_path):
    run(write(tmp_path, HEADER + "a,order_placed,2024-03-01T10:00:00Z,ana@example.com,10.00\n", "first.csv"))
    changed = write(
        tmp_path,
        HEADER
        + "b,order_placed,2024-03-02T10:00:00Z,ana@example.com,5.00\n"
        + "a,order_placed,2024-03-01T10:00:00Z,ana@example.com,99.00\n",
        "second.csv",
    )
    error, _out, err = run(changed)
    assert "1 of 2 rows could not be recorded" in str(error)
    assert err.startswith("Line 3:") and "'a'" in err
    assert list(Event.objects.values_list("idempotency_key", "value")) == [("a", Decimal("10.00"))]


def test_repeats_across_batches(source, tmp_path):
    rows = [
        "a,order_placed,2024-03-01T10:00:00Z,ana@example.com,10.00",
        "b,order_placed,2024-03-01T11:00:00Z,ana@example.com,",
        "c,order_placed,2024-03-01T12:00:00Z,bea@example.com,",
        "a,order_placed,2024-03-01T10:00:00Z,ana@example.com,10.00",
    ]
    path = write(tmp_path, HEADER + "\n".join(rows) + "\n")
    error, out, _err = run(path, "--batch-size", "2")
    assert error is None
    assert "3 events created, 1 already stored" in out

    changed = "a,order_placed,2024-03-01T10:00:00Z,x@example.com,10"  # another customer: a conflict
    conflicting = write(tmp_path, HEADER + "\n".join(rows[:3] + [changed]))
    Event.objects.all().delete()
    error, _out, err = run(conflicting, "--batch-size", "2")
    assert err.startswith("Line 5:")
    assert not Event.objects.exists()


def test_semicolon_delimiter_and_crlf(source, tmp_path):
    text = "event_id;type;occurred_at;phone\r\nk1;user_logged_in;2024-03-01T10:00:00+00:00;+34 612 345 678\r\n"
    error, out, _err = run(write(tmp_path, text), "--delimiter", ";")
    assert error is None
    assert Event.objects.get().customer.phone == "+34612345678"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "is empty"),
        ("\n", "must be a header"),
        ("event_id,type,email\n", "missing required column(s): occurred_at"),
        ("event_id,type,occurred_at,emial\n", "unknown column(s): 'emial'"),
        ("event_id,type,occurred_at,value\n", "at least one of the columns email, phone or external_id"),
        ("event_id,type,occurred_at,email,email\n", "repeated column(s): 'email'"),
    ],
)
def test_bad_header_is_a_clear_error(source, tmp_path, text, fragment):
    error, _out, _err = run(write(tmp_path, text))
    assert fragment in str(error)
    assert not Event.objects.exists()


def test_row_with_wrong_number_of_values(source, tmp_path):
    error, _out, err = run(write(tmp_path, HEADER + "a,order_placed,2024-03-01T10:00:00Z\n"))
    assert "1 of 1 rows were rejected" in str(error)
    assert "Line 2:" in err and "has 3 values but the header has 5 columns" in err


def test_header_only_imports_nothing(source, tmp_path):
    error, out, _err = run(write(tmp_path, HEADER))
    assert error is None and "no rows" in out


def test_not_utf8_is_a_clear_error(source, tmp_path):
    path = write(tmp_path, HEADER + "a,order_placed,2024-03-01T10:00:00Z,josé@example.com,\n", encoding="latin-1")
    error, _out, _err = run(path)
    assert "is not UTF-8" in str(error)


def test_unknown_or_disabled_source(source, tmp_path):
    path = FIXTURES / "events_good.csv"
    error, _out, _err = run(path, source="till")
    assert "no event source named 'till'" in str(error) and "journeys_create_source till" in str(error)
    EventSource.objects.filter(pk=source.pk).update(is_active=False)
    error, _out, _err = run(path)
    assert "disabled" in str(error)
    assert not Event.objects.exists()


def test_missing_file(source, tmp_path):
    error, _out, _err = run(tmp_path / "nope.csv")
    assert "Cannot read" in str(error)


def test_help_renders():
    from oscar_journeys.management.commands.journeys_import_events import Command

    assert "--dry-run" in Command().create_parser("manage.py", "journeys_import_events").format_help()

"""Bulk writes from frames, without a model instance per row.

Django's ``bulk_create`` prepares every value of every row through its field classes: about
0.3 ms a row, half a minute for 100k rows. Here values are prepared per column and sent in
one statement: on PostgreSQL ``COPY``'d into a temporary table (``copy_to_temp``), then one
``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` (or ``UPDATE ... FROM``); on SQLite one
``executemany``. The triggers enroll with ``insert_ignoring_conflicts`` (a frame in, a count
out); the decision round writes decisions and their messages with
``insert_rows_with_children`` on PostgreSQL (one statement) and ``insert_rows`` elsewhere
(columns in, the new messages' ids out). A statement that joins a temporary table to a big
table by its key runs inside ``keyed_join`` (key look-ups: the work of the temporary
table's rows, not of the big table's).
"""

import contextlib
import csv
import datetime as dt
import io
import json

import numpy as np
import pandas as pd
from django.db import DatabaseError, connection, transaction
from django.db.models import JSONField


def _is_column(value):
    return isinstance(value, (list, tuple, np.ndarray, pd.Series))


NULL = "\\N"


def _fields(values):
    """One column as ``csv.writer`` writes it: a missing value (None, NaN, NaT) as ``\\N``
    (NULL), timestamps as the text Django writes, everything else as Python prints it."""
    if isinstance(values, np.ndarray):
        values = pd.Series(values)
    if isinstance(values, pd.Series):
        missing = values.isna()
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            return db_timestamps(values, "postgresql").where(~missing, NULL).tolist()
        if not missing.any():
            return values.tolist()
        return values.astype(object).where(~missing, NULL).tolist()
    return [NULL if v is None or v is pd.NA or v != v else v for v in values]  # v != v: NaN, NaT


def _csv(columns):
    """``columns`` (a DataFrame, or {name: values}) as CSV text, for ``COPY ... (FORMAT
    csv, NULL '\\N')``: missing values (None, NaN, NaT) are written \\N (NULL); an empty
    string stays empty. Written by ``csv.writer`` from Python lists: four times faster
    than ``DataFrame.to_csv`` on the round's columns."""
    if isinstance(columns, pd.DataFrame):
        columns = {name: columns[name] for name in columns.columns}
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(zip(*(_fields(values) for values in columns.values())))
    return buffer.getvalue()


def _copy(cursor, table, names, columns):
    """``COPY`` ``columns`` into ``table``'s columns ``names`` (quoted, comma-separated)."""
    with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN WITH (FORMAT csv, NULL '\\N')") as copy:
        copy.write(_csv(columns))


def copy_to_temp(cursor, model, columns):
    """PostgreSQL: ``COPY`` ``columns`` (a DataFrame, or {name: values}; names are field
    names or columns of ``model``) into a new temporary table shaped like those columns of
    ``model``'s table (dropped at commit); returns its quoted name."""
    qn = connection.ops.quote_name
    names = ", ".join(qn(model._meta.get_field(name).column) for name in columns)
    temp = qn(f"tmp_{model._meta.db_table}")
    cursor.execute(
        f"CREATE TEMPORARY TABLE {temp} ON COMMIT DROP AS SELECT {names} FROM {qn(model._meta.db_table)} "
        "WITH NO DATA"
    )
    _copy(cursor, temp, names, columns)
    return temp


@contextlib.contextmanager
def keyed_join(cursor):
    """PostgreSQL: inside, a statement joining a temporary table to a big table on its key
    looks each row up in the key's index (a nested loop): work in proportion to the rows
    of the temporary table, whatever the size of the other. Left to itself the planner (it
    has no statistics of a temporary table, and prices index look-ups as disk reads) reads
    the whole big table into a hash, or walks its key index from the start in a merge
    join: a customer-id shard of a round paid for every enrollment of the table (measured
    at 2,000,000 enrollments: a shard's 200,000 updated in 0.5 s instead of 1.4-1.6 s;
    the whole table in 6.2 s against 6.4 s). The planner's settings are the
    transaction's, and restored on the way out (after a database error the transaction's
    rollback restores them)."""
    names = ("enable_hashjoin", "enable_mergejoin")
    cursor.execute("SELECT " + ", ".join(f"current_setting('{name}')" for name in names))
    before = list(cursor.fetchone())

    def restore():
        cursor.execute("SELECT " + ", ".join(f"set_config('{name}', %s, true)" for name in names), before)

    cursor.execute("SELECT " + ", ".join(f"set_config('{name}', 'off', true)" for name in names))
    try:
        yield
    except DatabaseError:
        raise  # the transaction can run nothing more until it is rolled back
    except BaseException:
        restore()
        raise
    restore()


def _split(model, data):
    """``data`` ({attname: a column, or one value for every row}) as (varying columns, {field:
    database value} of the constants, every other field's default included)."""
    varying = {name: list(value) for name, value in data.items() if _is_column(value)}
    constants = {}
    for f in model._meta.concrete_fields:
        if f.primary_key or f.attname in varying:
            continue
        if f.attname in data:
            constants[f] = data[f.attname]
        elif isinstance(f, JSONField):
            constants[f] = json.dumps(f.get_default())
        else:
            constants[f] = f.get_db_prep_save(f.get_default(), connection)
    return varying, constants


def _column(model, name):
    field = model._meta.pk if name == "pk" else model._meta.get_field(name)
    return connection.ops.quote_name(field.column)


def _cast(field):
    return f"%s::{field.db_type(connection)}"


def insert_rows(model, data, *, returning=()):
    """Insert rows into ``model``'s table in bulk, skipping rows that conflict with a
    unique key (``ON CONFLICT DO NOTHING``), as ``bulk_create(ignore_conflicts=True)`` does
    but without building a model instance and preparing each value per row (ten times
    faster at 100k rows). ``data``: {attname: a list of values, one per row, or one value
    for every row}; other fields take their default. Values are in database form (ints,
    strings, aware datetimes). On PostgreSQL the varying columns are ``COPY``'d into a
    temporary table, then ``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` adds the
    constant ones, and the ``returning`` columns of the rows actually inserted are
    returned. (Measured: ``COPY`` straight into the table, with ids drawn from its
    sequence first, is slower.) On other databases (``executemany``) returns None: read
    them back."""
    varying, constants = _split(model, data)
    n = len(next(iter(varying.values()))) if varying else 0
    if not n:
        return [] if connection.vendor == "postgresql" else None
    qn = connection.ops.quote_name
    table = qn(model._meta.db_table)
    var_columns = [_column(model, name) for name in varying]
    names = ", ".join(var_columns + [qn(f.column) for f in constants])
    if connection.vendor == "postgresql":
        back = ", ".join(_column(model, name) for name in returning)
        casts = ", ".join(var_columns + [_cast(f) for f in constants])
        with connection.cursor() as cursor:
            temp = copy_to_temp(cursor, model, varying)
            cursor.execute(
                f"INSERT INTO {table} ({names}) SELECT {casts} FROM {temp} ON CONFLICT DO NOTHING"
                + (f" RETURNING {back}" if back else ""),
                list(constants.values()),
            )
            rows = cursor.fetchall() if back else []
            cursor.execute(f"DROP TABLE {temp}")
        return rows
    adapt = connection.ops.adapt_datetimefield_value
    for name, values in varying.items():
        if isinstance(values[0], dt.datetime):
            varying[name] = [adapt(v) for v in values]
    fixed = tuple(adapt(v) if isinstance(v, dt.datetime) else v for v in constants.values())
    marks = ", ".join(["%s"] * (len(varying) + len(fixed)))
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {table} ({names}) VALUES ({marks}) ON CONFLICT DO NOTHING",
            [row + fixed for row in zip(*varying.values())],
        )
    return None


class Parent(str):
    """In ``insert_rows_with_children``'s ``child_data``: the value of this attname of the
    parent row (``Parent("pk")``: the parent's new id)."""


def insert_rows_with_children(model, data, *, key, child, child_data, has_child, returning=("id",)):
    """PostgreSQL: insert parent rows into ``model`` as ``insert_rows`` does (``ON CONFLICT
    DO NOTHING``), and, in the same statement, one ``child`` row for each parent row inserted
    here whose ``has_child`` (a list of booleans, one per row) is true; return the
    ``returning`` columns of the children inserted. ``key``: the parent attnames that are
    unique per row (the children find their parent row by them); ``child_data`` as
    ``insert_rows``' ``data``, where a ``Parent(name)`` value stands for the parent row's
    value (``Parent("pk")``: its new id). One ``COPY`` of both sets of columns into a
    temporary table and one ``INSERT`` with a data-modifying ``WITH``: neither the parents'
    ids nor the children's columns go through Python a second time. (Drawing the parents'
    ids from their sequence into the temporary table, then one plain ``INSERT`` per table,
    was measured slower: 21 s against 17-19.6 s for 500,000 decisions and 466,667
    messages.)"""
    qn = connection.ops.quote_name
    varying, constants = _split(model, data)
    links = {name: value for name, value in child_data.items() if isinstance(value, Parent)}
    child_varying, child_constants = _split(child, {k: v for k, v in child_data.items() if k not in links})
    for name in links:
        child_constants.pop(child._meta.get_field(name), None)
    if not varying or not len(next(iter(varying.values()))):
        return []
    own = [_column(model, name) for name in varying]
    temp = qn(f"tmp_{model._meta.db_table}_{child._meta.db_table}")
    shapes = ", ".join(
        [f"p.{column}" for column in own]
        + [f"c.{_column(child, name)} AS {qn('c_' + name)}" for name in child_varying]
        + ["true AS has_child"]
    )
    parent_names = ", ".join(own + [qn(f.column) for f in constants])
    parent_values = ", ".join(own + [_cast(f) for f in constants])

    def from_parent(name):
        column = _column(model, name)
        return f"d.{column}" if name == "pk" or name in key else f"t.{column}"

    returned_keys = ", ".join(_column(model, name) for name in ["pk", *key])
    child_columns = (
        [_column(child, name) for name in links] + [_column(child, name) for name in child_varying]
        + [qn(f.column) for f in child_constants]
    )
    child_values = (
        [from_parent(str(value)) for value in links.values()] + [f"t.{qn('c_' + name)}" for name in child_varying]
        + [_cast(f) for f in child_constants]
    )
    join = " AND ".join(f"t.{_column(model, name)} = d.{_column(model, name)}" for name in key)
    back = ", ".join(_column(child, name) for name in returning)
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE {temp} ON COMMIT DROP AS SELECT {shapes} "
            f"FROM {qn(model._meta.db_table)} AS p, {qn(child._meta.db_table)} AS c WITH NO DATA"
        )
        columns = {**varying, **{f"c_{name}": values for name, values in child_varying.items()},
                   "has_child": list(has_child)}
        _copy(cursor, temp, ", ".join(own + [qn(name) for name in list(columns)[len(own):]]), columns)
        cursor.execute(
            f"WITH d AS (INSERT INTO {qn(model._meta.db_table)} ({parent_names}) SELECT {parent_values} FROM {temp} "
            f"ON CONFLICT DO NOTHING RETURNING {returned_keys}) "
            f"INSERT INTO {qn(child._meta.db_table)} ({', '.join(child_columns)}) "
            f"SELECT {', '.join(child_values)} FROM d JOIN {temp} AS t ON {join} WHERE t.has_child "
            f"ON CONFLICT DO NOTHING RETURNING {back}",
            list(constants.values()) + list(child_constants.values()),
        )
        rows = cursor.fetchall()
        cursor.execute(f"DROP TABLE {temp}")
    return rows


def db_timestamps(instants, vendor):
    """Timestamps as the text Django writes: naive UTC on SQLite (no ".000000" on a whole
    second, as ``str(datetime)``), with "+00:00" on PostgreSQL."""
    us = instants.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[us]")
    values, codes = np.unique(us, return_inverse=True)  # few distinct values: format each once
    text = np.datetime_as_string(values, unit="us").astype("S26")
    text.view("uint8").reshape(-1, 26)[:, 10] = ord(" ")  # Django writes a space, not a T
    text = text.astype(str).astype(object)
    whole = (values.astype("int64") % 1_000_000) == 0
    text[whole] = [t[:19] for t in text[whole]]
    if vendor == "postgresql":
        text = text + "+00:00"
    return pd.Series(text[codes.reshape(-1)], index=instants.index, dtype=object)


def insert_ignoring_conflicts(model, rows, *, constants=None):
    """Insert a frame whose columns are the model's database columns, plus ``constants``
    ({column: value} shared by every row), skipping rows that break a unique constraint;
    return how many were inserted.

    Django's ``bulk_create`` prepares every value of every row through its field classes:
    about 0.3 ms a row, half a minute for 100k enrollments. Here the values are prepared
    per column (timestamps as text, JSON already dumped) and sent in one ``executemany``
    (SQLite, ``INSERT OR IGNORE``) or COPY into a temporary table and one ``INSERT ...
    SELECT ... ON CONFLICT DO NOTHING`` (PostgreSQL), in a transaction (a savepoint when
    one is open)."""
    vendor = connection.vendor
    fields = {field.column: field for field in model._meta.concrete_fields}
    constants = constants or {}
    if vendor not in ("sqlite", "postgresql"):
        rows = rows.assign(**constants)
        objects = [model(**{fields[c].attname: v for c, v in zip(rows.columns, row)}) for row in rows.itertuples(False)]
        return len(model._default_manager.bulk_create(objects, batch_size=1000, ignore_conflicts=True))
    rows = rows.copy()
    for column in rows.columns:
        if isinstance(rows[column].dtype, pd.DatetimeTZDtype):
            rows[column] = db_timestamps(rows[column], vendor)
    constants = {
        column: fields[column].get_db_prep_save(value, connection) for column, value in constants.items()
    }
    qn = connection.ops.quote_name
    table = qn(model._meta.db_table)
    varying = ", ".join(qn(c) for c in rows.columns)
    columns = ", ".join(qn(c) for c in [*rows.columns, *constants])
    with transaction.atomic(), connection.cursor() as cursor:
        if vendor == "postgresql":
            # COPY the varying columns into a temporary table, then one INSERT ... SELECT
            # that adds the constants.
            staging = copy_to_temp(cursor, model, rows)
            shared = "".join(f", %s::{fields[c].db_type(connection)}" for c in constants)
            cursor.execute(
                f"INSERT INTO {table} ({columns}) SELECT {varying}{shared} FROM {staging} ON CONFLICT DO NOTHING",
                list(constants.values()),
            )
            inserted = cursor.rowcount
            cursor.execute(f"DROP TABLE {staging}")
        else:
            rows = rows.assign(**constants)
            marks = ", ".join(["%s"] * len(rows.columns))
            values = rows.astype(object).where(rows.notna(), None)
            sql = f"INSERT OR IGNORE INTO {table} ({columns}) VALUES ({marks})"
            cursor.executemany(sql, values.itertuples(False, None))
            inserted = cursor.rowcount
    return inserted


def read_frame(rows, columns, *, text=(), flags=()):
    """The rows of ``rows`` (a ``values_list`` QuerySet) as a DataFrame with ``columns``,
    read without a Python object per value where the database allows: on PostgreSQL one
    ``COPY (query) TO STDOUT`` in CSV, parsed by pandas' C reader (a third of the time of
    fetching the rows, at a million rows); elsewhere the cursor's rows, without Django's
    per-row converters. Numbers come as numbers (NULL: NaN), ``text`` columns as strings
    (NULL: ""), ``flags`` (booleans) as True, False or None; dates, times and JSON as the
    database writes them, as text (convert them)."""
    sql, params = rows.query.sql_with_params()
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            cursor.execute(sql, params)
            frame = pd.DataFrame.from_records(cursor.fetchall(), columns=columns)
            for name in text:
                frame[name] = frame[name].fillna("").astype(object)
            for name in flags:  # 0 / 1 / None
                frame[name] = pd.Series([None if v is None else bool(v) for v in frame[name]], dtype=object)
            return frame
        buffer = io.BytesIO()
        with cursor.cursor.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)", params) as copy:
            for block in copy:
                buffer.write(block)
    if not buffer.tell():
        return pd.DataFrame({name: pd.Series(dtype=object) for name in columns})
    buffer.seek(0)
    # Only an empty field is missing: text such as "NA" or "null" is kept as written.
    frame = pd.read_csv(buffer, names=columns, header=None, dtype={name: str for name in (*text, *flags)},
                        keep_default_na=False, na_values=[""])
    for name in text:
        frame[name] = frame[name].fillna("").astype(object)
    for name in flags:
        frame[name] = frame[name].map({"t": True, "f": False}).astype(object).where(frame[name].notna(), None)
    return frame

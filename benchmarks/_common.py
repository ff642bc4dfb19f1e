"""What the benchmark scripts share.

- Throw-away databases: ``pg_admin`` runs CREATE/DROP DATABASE on the local PostgreSQL
  server (127.0.0.1, user postgres), and ``scratch_database`` yields the URL of a fresh
  database (a temporary SQLite file or a PostgreSQL database) and removes it afterwards.
- Child processes: each measured step runs in a fresh interpreter,
  ``python bench_x.py --child STEP ARGS``, so that one step's caches and memory do not
  colour the next. ``run_child`` starts one and returns the JSON it printed on its last
  line; ``answer_child`` is the child's side of that exchange.
- In a child: ``django_setup`` with the demo shop's settings on a given database,
  ``migrate``, and ``insert_frame`` / ``timestamps`` to bulk-load generated data straight
  into the tables (not through Oscar).

Importing this module puts the project root on ``sys.path``, so that the scripts (run as
``python benchmarks/bench_x.py``) can import ``example_shop`` and ``oscar_journeys``.
"""

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_URL = "postgres://postgres@127.0.0.1:5432/{name}"


# --- the parent: databases and child processes ----------------------------------------------


def pg_admin(*statements):
    """Run each statement on the PostgreSQL server's ``postgres`` database, in autocommit
    (CREATE and DROP DATABASE cannot run inside a transaction)."""
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


@contextlib.contextmanager
def scratch_database(database, name, prefix="journeys_bench_"):
    """Yield the URL of an empty database, removed on the way out.

    ``database`` is ``"postgres"`` (the database *name*, dropped if left over from an earlier
    run, then created) or ``"sqlite"`` (``bench.sqlite3`` in a new temporary folder whose
    name starts with *prefix*).
    """
    if database == "postgres":
        pg_admin(f"DROP DATABASE IF EXISTS {name}", f"CREATE DATABASE {name}")
        try:
            yield PG_URL.format(name=name)
        finally:
            pg_admin(f"DROP DATABASE IF EXISTS {name}")
    else:
        folder = Path(tempfile.mkdtemp(prefix=prefix))
        try:
            yield f"sqlite:///{folder / 'bench.sqlite3'}"
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def run_child(script, *args, label):
    """Run ``script --child ARGS`` in a fresh interpreter from the project root and return
    the JSON it printed on its last line. If it fails, show its output and exit with
    "<label> failed"."""
    command = [sys.executable, str(script), "--child", *map(str, args)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"{label} failed (exit {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- in the child -------------------------------------------------------------------------------


def answer_child(argv, steps):
    """Run the step named by ``argv[0]`` (``steps`` maps names to functions) on the rest
    of ``argv`` and print its result as one JSON line, for ``run_child``."""
    step, *args = argv
    print(json.dumps(steps[step](*args)))


def django_setup(database_url, broker=None):
    """Set Django up with the demo shop's settings on *database_url*, with DEBUG off (as in
    production: no query log). Celery publishes to *broker*; with None, the settings'
    default (an in-memory broker, tasks run eagerly)."""
    os.environ["DATABASE_URL"] = database_url
    if broker is None:
        os.environ.pop("CELERY_BROKER_URL", None)
    else:
        os.environ["CELERY_BROKER_URL"] = broker
    os.environ["DJANGO_SETTINGS_MODULE"] = "example_shop.settings"
    os.environ["DJANGO_DEBUG"] = "0"
    import django

    django.setup()


def migrate(database_url):
    """Create the tables; there is nothing to report (an empty dict)."""
    django_setup(database_url)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return {}


def timestamps(ns, vendor):
    """Datetime text as Django stores it: naive UTC on SQLite, with +00 on PostgreSQL."""
    import numpy as np

    text = np.datetime_as_string(ns.astype("datetime64[us]"), unit="us").astype("S26")
    text.view("uint8").reshape(-1, 26)[:, 10] = ord(" ")  # Django writes a space, not a T
    text = text.astype(str).astype(object)
    return text + "+00" if vendor == "postgresql" else text


def insert_frame(model, frame, connection):
    """Append a frame whose columns are the model's database columns (COPY on PostgreSQL,
    one ``executemany`` on SQLite)."""
    import io

    import pandas as pd

    qn = connection.ops.quote_name
    table, columns = qn(model._meta.db_table), ", ".join(qn(c) for c in frame.columns)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            buffer = io.StringIO()
            frame.to_csv(buffer, header=False, index=False)
            # Empty text is '' (not NULL) in the columns that cannot be NULL.
            fields = {f.column: f for f in model._meta.concrete_fields}
            texts = ", ".join(qn(c) for c in frame.columns if not fields[c].null and pd.api.types.is_string_dtype(frame[c]))
            force = f", FORCE_NOT_NULL ({texts})" if texts else ""
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv{force})") as copy:
                copy.write(buffer.getvalue())
        else:
            marks = ", ".join(["%s"] * len(frame.columns))
            values = frame.astype(object).where(frame.notna(), None)
            cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", values.itertuples(False, None))

"""Test settings: the demo shop's settings with fast hashing and an in-memory email outbox.

The plain run uses SQLite (in memory) and eager Celery. The integration run (see .ci/run and
the Makefile's `test-integration`) sets DATABASE_URL=postgres://... and
JOURNEYS_TEST_BROKER_URL=redis://...; tests marked `integration` then publish to that broker
and a real Celery worker (started by tests/integration/worker.py) runs the tasks."""

import os

os.environ.pop("CELERY_BROKER_URL", None)

from example_shop.settings import *  # noqa: E402,F401,F403
from example_shop.settings import DATABASES  # noqa: E402

if "DATABASE_URL" not in os.environ:
    DATABASES["default"] = {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CELERY_TASK_ALWAYS_EAGER = True
CELERY_BROKER_URL = os.environ.get("JOURNEYS_TEST_BROKER_URL", "memory://")
LOGGING = {"version": 1, "disable_existing_loggers": False}
SECRET_KEY = "tests-only"
if os.environ.get("JOURNEYS_TEST_DB_NAME"):  # lets two test runs share one PostgreSQL server
    DATABASES["default"]["TEST"] = {"NAME": os.environ["JOURNEYS_TEST_DB_NAME"]}

# The built-in channel backends plus the in-memory ones the tests send through.
from oscar_journeys.app_settings import DEFAULTS as _JOURNEYS_DEFAULTS  # noqa: E402

OSCAR_JOURNEYS_CHANNEL_BACKENDS = [
    *_JOURNEYS_DEFAULTS["CHANNEL_BACKENDS"],
    "oscar_journeys.channels.locmem.LocmemChannel",
    "oscar_journeys.channels.locmem.LocmemSmsChannel",
]

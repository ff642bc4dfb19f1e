"""A real Celery worker, in its own process, on the broker and database of the test run."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def integration_services():
    """(database_url, broker_url), or a pytest skip saying what is missing."""
    broker = os.environ.get("JOURNEYS_TEST_BROKER_URL")
    if not broker:
        pytest.skip("integration run only: set JOURNEYS_TEST_BROKER_URL (e.g. redis://127.0.0.1:6379/15)")
    if connection.vendor != "postgresql":
        pytest.skip("integration run only: set DATABASE_URL to a PostgreSQL database")
    import redis

    try:
        redis.Redis.from_url(broker, socket_connect_timeout=2).ping()
    except redis.exceptions.RedisError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"Redis at {broker} is not reachable: {exc}")
    return broker


class Worker:
    """``settings_module``: the worker's Django settings; ``pool``: "solo" (tasks run in the
    worker process) or "prefork" (one child process runs them, ``concurrency`` children);
    ``log_name``: its log file under the project root."""

    def __init__(self, broker, *, settings_module="tests.settings", pool="solo", concurrency=1,
                 log_name="celery-worker-test.log"):
        self.broker = broker
        self.process = None
        self.settings_module = settings_module
        self.pool = pool
        self.concurrency = concurrency
        self.log_path = ROOT / log_name

    def start(self):
        db = settings.DATABASES["default"]
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": self.settings_module,
            # The worker must use the test database that pytest-django created.
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            "JOURNEYS_TEST_BROKER_URL": self.broker,
        }
        self.log = open(self.log_path, "w")
        pool = ["-P", self.pool] + (["-c", str(self.concurrency)] if self.pool == "prefork" else [])
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "example_shop", "worker", *pool, "-l", "info",
             "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", "journeys-test@%h"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        self.wait_until(self._ready, timeout=60, what="the worker to start")

    def _ready(self):
        if self.process.poll() is not None:
            raise RuntimeError(f"celery worker exited: see {self.log.name}")
        return "ready." in self.log_path.read_text()

    @staticmethod
    def wait_until(predicate, timeout=30, what="the condition"):
        """Poll a real, separate process's effect (never used to simulate time)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if self.process:
            self.log.close()

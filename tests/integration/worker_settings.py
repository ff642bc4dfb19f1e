"""Settings of the Celery worker that tests/integration/test_worker_delivery.py starts: the
test settings, plus the recording channel backend."""

from tests.settings import *  # noqa: F401,F403
from tests.settings import OSCAR_JOURNEYS_CHANNEL_BACKENDS as _BACKENDS

OSCAR_JOURNEYS_CHANNEL_BACKENDS = [*_BACKENDS, "tests.integration.recording_channel.RecordingChannel"]

import pytest
from django.core.checks import run_checks
from django.test import override_settings


def ids():
    return {m.id for m in run_checks() if m.id.startswith("oscar_journeys")}


@pytest.mark.django_db
def test_default_configuration_passes_checks():
    assert ids() == set()


@override_settings(OSCAR_JOURNEYS_DEFAULT_PHONE_REGION="XX")
def test_unknown_phone_region_is_reported():
    assert "oscar_journeys.E003" in ids()


@override_settings(OSCAR_JOURNEYS_EXTRA_EVENT_TYPES={"Bad Type": "x"})
def test_bad_extra_event_type_is_reported():
    assert "oscar_journeys.E002" in ids()

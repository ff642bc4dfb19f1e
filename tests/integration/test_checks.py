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


def test_app_listed_after_oscar_dashboard_is_reported(settings):
    apps_list = [a for a in settings.INSTALLED_APPS if a != "oscar_journeys"]
    settings.INSTALLED_APPS = apps_list + ["oscar_journeys"]
    from oscar_journeys.checks import check_celery_and_app_order

    assert "oscar_journeys.W003" in {m.id for m in check_celery_and_app_order(None)}


def test_unconfigured_celery_app_is_reported():
    from unittest import mock

    from oscar_journeys.checks import check_celery_and_app_order

    with mock.patch("celery.current_app") as app:
        app.main = None
        app.conf.task_always_eager = False
        assert "oscar_journeys.W002" in {m.id for m in check_celery_and_app_order(None)}

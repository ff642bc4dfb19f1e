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


@pytest.mark.parametrize(
    "thresholds, named",
    [
        ({"churn_days": 30}, "'churn_days'"),
        ({"at_risk_days": -5}, "'at_risk_days'"),
        ({"high_value_quantile": 1.5}, "'high_value_quantile'"),
        ({"at_risk_days": 90, "churned_days": 60}, "at_risk_days (90) must be below churned_days (60)"),
        ([("at_risk_days", 60)], "must be a dict"),
    ],
)
def test_bad_lifecycle_thresholds_are_reported_by_name(thresholds, named):
    with override_settings(OSCAR_JOURNEYS_LIFECYCLE_THRESHOLDS=thresholds):
        errors = [m for m in run_checks() if m.id == "oscar_journeys.E006"]
    assert len(errors) == 1 and named in errors[0].msg


@pytest.mark.parametrize(
    "setting, value",
    [("CHURN_HORIZON_DAYS", 0), ("CLV_HORIZON_DAYS", "365"), ("TRAINING_SAMPLE_SIZE", 1.5), ("MICRO_SEGMENTS_MIN", 1),
     ("MICRO_SEGMENTS_MAX", 3)],
)
def test_bad_nightly_numbers_are_reported(setting, value):
    with override_settings(**{f"OSCAR_JOURNEYS_{setting}": value}):
        errors = [m for m in run_checks() if m.id == "oscar_journeys.E007"]
    assert errors and any(setting.split("_")[0] in m.msg for m in errors)


def test_good_lifecycle_thresholds_pass():
    with override_settings(OSCAR_JOURNEYS_LIFECYCLE_THRESHOLDS={"at_risk_days": 60, "churned_days": 180}):
        assert not {m.id for m in run_checks()} & {"oscar_journeys.E006", "oscar_journeys.E007"}

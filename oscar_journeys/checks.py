"""System checks, ids ``oscar_journeys.E00x`` / ``W00x``."""

from django.apps import apps
from django.conf import settings
from django.core.checks import Error, Warning, register

REQUIRED_OSCAR_APPS = ("order", "basket", "catalogue", "customer", "checkout")


@register()
def check_oscar_apps(app_configs, **kwargs):
    errors = []
    for label in REQUIRED_OSCAR_APPS:
        if not apps.is_installed(f"oscar.apps.{label}") and label not in apps.app_configs:
            errors.append(
                Error(
                    f"oscar_journeys needs Oscar's '{label}' app in INSTALLED_APPS.",
                    hint="Add Oscar's apps as its documentation lists them (oscar.INSTALLED_APPS).",
                    id="oscar_journeys.E001",
                )
            )
    return errors


@register()
def check_settings(app_configs, **kwargs):
    from . import app_settings

    messages = []
    extra = app_settings.EXTRA_EVENT_TYPES
    if not isinstance(extra, dict) or not all(
        isinstance(k, str) and k.isidentifier() and k.islower() for k in extra
    ):
        messages.append(
            Error(
                "OSCAR_JOURNEYS_EXTRA_EVENT_TYPES must be a dict of lower_case_code: label.",
                id="oscar_journeys.E002",
            )
        )
    region = app_settings.DEFAULT_PHONE_REGION
    if region is not None:
        import phonenumbers

        if region not in phonenumbers.SUPPORTED_REGIONS:
            messages.append(
                Error(
                    f"OSCAR_JOURNEYS_DEFAULT_PHONE_REGION {region!r} is not a region phonenumbers knows.",
                    hint="Use an ISO 3166-1 alpha-2 code such as 'GB', 'ES' or 'BR'.",
                    id="oscar_journeys.E003",
                )
            )
    if "django.contrib.sessions" not in settings.INSTALLED_APPS:
        messages.append(
            Warning(
                "Without django.contrib.sessions, anonymous visitors' events cannot join their "
                "account when they log in.",
                id="oscar_journeys.W001",
            )
        )
    return messages


@register()
def check_celery_and_app_order(app_configs, **kwargs):
    messages = []
    from celery import current_app

    if current_app.main is None and not current_app.conf.task_always_eager:
        messages.append(
            Warning(
                "No Celery app is configured: oscar_journeys's tasks would be sent to Celery's "
                "default broker (amqp://localhost).",
                hint="Add a Celery app that reads CELERY_* settings (README: 'Add it to your shop'), "
                "or set CELERY_TASK_ALWAYS_EAGER = True in such an app to run tasks in process.",
                id="oscar_journeys.W002",
            )
        )
    installed = list(settings.INSTALLED_APPS)
    users = [i for i, name in enumerate(installed) if name.startswith("oscar.apps.dashboard.users")]
    ours = [i for i, name in enumerate(installed) if name.startswith("oscar_journeys")]
    if users and ours and ours[0] > users[0]:
        messages.append(
            Warning(
                "oscar_journeys is listed after Oscar's dashboard apps: the dashboard's customer page "
                "will not link to the customer 360 page.",
                hint="Move 'oscar_journeys' before 'oscar.config.Shop' in INSTALLED_APPS.",
                id="oscar_journeys.W003",
            )
        )
    return messages

"""System checks, ids ``oscar_journeys.E00x`` / ``W00x``."""

from django.apps import apps
from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

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
    messages += _segment_settings_errors(app_settings)
    if "django.contrib.sessions" not in settings.INSTALLED_APPS:
        messages.append(
            Warning(
                "Without django.contrib.sessions, anonymous visitors' events cannot join their "
                "account when they log in.",
                id="oscar_journeys.W001",
            )
        )
    return messages


def _segment_settings_errors(app_settings):
    """The nightly chain's settings (docs/segments.md), checked before a night fails on them."""
    from .ml.lifecycle import check_overrides

    errors = []
    thresholds = app_settings.LIFECYCLE_THRESHOLDS
    try:
        if not isinstance(thresholds, dict):
            raise ValueError(f"it must be a dict, not {type(thresholds).__name__}")
        check_overrides(thresholds)
    except ValueError as exc:
        errors.append(Error(f"OSCAR_JOURNEYS_LIFECYCLE_THRESHOLDS: {exc}.", id="oscar_journeys.E006"))
    numbers = {
        name: getattr(app_settings, name)
        for name in ("CHURN_HORIZON_DAYS", "CLV_HORIZON_DAYS", "TRAINING_SAMPLE_SIZE", "MICRO_SEGMENTS_MIN",
                     "MICRO_SEGMENTS_MAX")
    }
    for name, value in numbers.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            errors.append(
                Error(f"OSCAR_JOURNEYS_{name} must be a whole number of 1 or more, not {value!r}.",
                      id="oscar_journeys.E007")
            )
    low, high = numbers["MICRO_SEGMENTS_MIN"], numbers["MICRO_SEGMENTS_MAX"]
    if all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high)) and not 2 <= low <= high:
        errors.append(
            Error(f"OSCAR_JOURNEYS_MICRO_SEGMENTS_MIN ({low}) and _MAX ({high}) must satisfy 2 <= MIN <= MAX.",
                  id="oscar_journeys.E007")
        )
    return errors


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


@register()
def check_channel_backends(app_configs, **kwargs):
    """Every OSCAR_JOURNEYS_CHANNEL_BACKENDS path imports and is a complete BaseChannel."""
    from django.utils.module_loading import import_string

    from . import app_settings
    from .channels.base import BaseChannel
    from .models.channels import KIND_CHOICES

    kinds = {kind for kind, _label in KIND_CHOICES}
    errors = []
    for path in app_settings.CHANNEL_BACKENDS:
        try:
            cls = import_string(path)
        except ImportError as exc:
            errors.append(
                Error(
                    f"OSCAR_JOURNEYS_CHANNEL_BACKENDS: cannot import {path!r} ({exc}).",
                    hint="Fix the dotted path or install the package that provides it.",
                    id="oscar_journeys.E004",
                )
            )
            continue
        problems = []
        if not (isinstance(cls, type) and issubclass(cls, BaseChannel)):
            problems.append("it is not a subclass of oscar_journeys.channels.base.BaseChannel")
        else:
            if cls.kind not in kinds:
                problems.append(f"its kind {cls.kind!r} is not one of {sorted(kinds)}")
            if not cls.channel_name:
                problems.append("it has no channel_name")
            missing = set(cls.secret_options) - set(cls.option_fields())
            if missing:
                problems.append(f"secret_options {sorted(missing)} are not among its option_fields()")
        if problems:
            errors.append(
                Error(
                    f"OSCAR_JOURNEYS_CHANNEL_BACKENDS: {path!r} is not a usable channel backend: "
                    + "; ".join(problems) + ".",
                    hint="See docs/channels.md, 'Writing a backend'.",
                    id="oscar_journeys.E005",
                )
            )
    return errors


@register(Tags.security, deploy=True)
def check_channel_security(app_configs, **kwargs):
    from . import app_settings

    messages = []
    if app_settings.ALLOW_PRIVATE_ADDRESSES:
        messages.append(
            Warning(
                "OSCAR_JOURNEYS_ALLOW_PRIVATE_ADDRESSES is True: every webhook, SMS and push channel may "
                "call private and loopback addresses (server-side request forgery).",
                hint="Set it to False and allow private addresses only on the channels that need them "
                "(their 'allow_private_addresses' option).",
                id="oscar_journeys.W004",
            )
        )
    site_url = app_settings.SITE_URL
    if site_url and not str(site_url).lower().startswith("https://"):
        messages.append(
            Warning(
                f"OSCAR_JOURNEYS_SITE_URL ({site_url}) is not https: unsubscribe, tracking and basket "
                "links in messages would travel unencrypted.",
                hint="Use an https:// URL.",
                id="oscar_journeys.W005",
            )
        )
    return messages

"""oscar_journeys settings, read from ``OSCAR_JOURNEYS_<NAME>`` on every access.

Use ``from oscar_journeys import app_settings`` then ``app_settings.ENABLED``: every read
goes to ``django.conf.settings``, so ``override_settings`` works in tests. An unknown name
raises ``AttributeError``. Each default is documented in ``DEFAULTS`` below and in
``docs/settings.md``.
"""

from django.conf import settings

PREFIX = "OSCAR_JOURNEYS_"

DEFAULTS = {
    # Master switch: when False, receivers record nothing.
    "ENABLED": True,
    # Session key under which the visitor's customer id is kept between requests, so an
    # anonymous visitor's events join their account when they log in or register.
    "SESSION_KEY": "_journeys_customer",
    # Default region used to read phone numbers written without a +country prefix
    # (an ISO 3166 code such as "GB", "ES" or "BR"). None: such numbers are rejected.
    "DEFAULT_PHONE_REGION": None,
    # Order statuses that mean "cancelled" (recorded as `order_cancelled`).
    "CANCELLED_ORDER_STATUSES": ["Cancelled"],
    # Order line statuses that mean "returned" (recorded as `order_line_returned`).
    "RETURNED_LINE_STATUSES": ["Returned"],
    # Event types besides the built-in ones that the API and CSV import accept,
    # as {"type_code": "Human label"}.
    "EXTRA_EVENT_TYPES": {},
    # Requests a minute (DRF rate syntax) one event source may make to the events API, unless
    # REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["journeys-events"] sets it. None: unthrottled.
    "API_THROTTLE_RATE": "600/min",
    # Most events one API request may carry.
    "API_MAX_BATCH": 500,
    # Largest JSON payload (properties) one event may carry, in bytes once serialised.
    "MAX_PAYLOAD_BYTES": 16384,
    # How far in the future an incoming event's time may be (clock skew), in seconds.
    "MAX_CLOCK_SKEW_SECONDS": 300,
    # Customers per snapshot shard (one Celery task each).
    "SNAPSHOT_SHARD_SIZE": 50000,
}


def __getattr__(name):
    if name not in DEFAULTS:
        raise AttributeError(f"oscar_journeys has no setting {name!r} ({PREFIX}{name})")
    return getattr(settings, PREFIX + name, DEFAULTS[name])

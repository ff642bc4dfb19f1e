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
    # --- campaigns and delivery ---
    # Channel backends the admin offers (dotted paths of BaseChannel subclasses). Tests add
    # the in-memory ones, oscar_journeys.channels.locmem.LocmemChannel / LocmemSmsChannel.
    "CHANNEL_BACKENDS": [
        "oscar_journeys.channels.email.EmailChannel",
        "oscar_journeys.channels.sms.HttpSmsChannel",
        "oscar_journeys.channels.sms.TwilioSmsChannel",
        "oscar_journeys.channels.push.HttpPushChannel",
        "oscar_journeys.channels.webhook.WebhookChannel",
        "oscar_journeys.channels.console.ConsoleChannel",
        "oscar_journeys.channels.console.ConsoleSmsChannel",
    ],
    # Absolute base of the links in messages (tracking, unsubscribe, basket restore), e.g.
    # "https://shop.example.com". None: "https://" + the current Site's domain.
    "SITE_URL": None,
    # Postal address of the shop, shown in every marketing email (CAN-SPAM); templates
    # reach it as {{ shop.postal_address }}.
    "SHOP_POSTAL_ADDRESS": "",
    # Share of customers (percent) kept in the global control group: they get no marketing
    # at all, so the whole programme's uplift can be measured. 0 turns it off.
    "GLOBAL_CONTROL_PERCENT": 5,
    # Changing it re-draws the global control group (and per-campaign holdouts).
    "RANDOMIZATION_SEED": "oscar_journeys",
    # Days after a message (or a held-out decision) in which an order counts for it.
    "ATTRIBUTION_DAYS": 5,
    # Consent needed per channel type: "opt_in" (an explicit, recorded yes), "soft_opt_in"
    # (customers who registered or ordered count as consenting until they opt out; EU
    # ePrivacy art. 13(2)) or "none" (no consent needed, e.g. a shop's own webhook).
    "CONSENT_REQUIRED": {"email": "soft_opt_in", "sms": "opt_in", "push": "opt_in", "webhook": "none"},
    # Messages one send task handles.
    "SEND_BATCH_SIZE": 200,
    # Messages claimed (queued -> sending) per commit while a task sends its batch. Each claim
    # must be on disk before the provider is called, so the commit (an fsync) is paid once
    # per group; a worker that dies mid-group leaves at most this many messages "sending",
    # failed later and never sent twice. 1: the strictest, one commit per message.
    "SEND_CLAIM_SIZE": 4,
    # Attempts at sending one message before it is marked failed (transient errors only).
    "SEND_MAX_ATTEMPTS": 5,
    # Upper bound of the back-off between two attempts, in seconds.
    "SEND_RETRY_BACKOFF_MAX": 600,
    # A message left "sending" this long (its worker died mid-send) is marked failed, never
    # sent again: it may have gone out, and sending twice is worse than once too few.
    "SENDING_TIMEOUT_SECONDS": 900,
    # Days a basket-restore link stays valid.
    "RESTORE_LINK_MAX_AGE_DAYS": 30,
    # Webhooks and HTTP providers: timeout in seconds, and whether private, loopback and
    # link-local addresses may be called (only for a shop's own internal services).
    "HTTP_TIMEOUT_SECONDS": 15,
    "ALLOW_PRIVATE_ADDRESSES": False,
    # Customers per decision-round shard (one Celery task each).
    "DECISION_SHARD_SIZE": 50000,
    # --- segments and predictions (docs/segments.md) ---
    # Lifecycle thresholds that override the ones learned from the shop's data, e.g.
    # {"at_risk_days": 60, "churned_days": 180}. Keys: new_days, at_risk_days, churned_days,
    # high_value_quantile (share of buyers above which spend counts as high value, 0-1).
    "LIFECYCLE_THRESHOLDS": {},
    # Days after a snapshot within which no order counts as churn (the churn label).
    "CHURN_HORIZON_DAYS": 90,
    # Days over which lifetime value (expected orders and spend) is predicted.
    "CLV_HORIZON_DAYS": 365,
    # Most customers the nightly training reads (an even spread of id ranges); scoring
    # always covers everyone.
    "TRAINING_SAMPLE_SIZE": 200000,
    # Range of the number of micro-segments; the silhouette score picks one within it.
    "MICRO_SEGMENTS_MIN": 4,
    "MICRO_SEGMENTS_MAX": 10,
}


def __getattr__(name):
    if name not in DEFAULTS:
        raise AttributeError(f"oscar_journeys has no setting {name!r} ({PREFIX}{name})")
    return getattr(settings, PREFIX + name, DEFAULTS[name])

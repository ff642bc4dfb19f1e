"""Column names shared by the database boundary (selectors) and the core.

Events frame (one row per event), as ``selectors.events_frame`` returns it:

    customer_id   int64     canonical customer id (merges already applied)
    type          category  one of EVENT_TYPES (or a shop's extra type)
    occurred_at   datetime64[ns, UTC]
    value         float64   money value where there is one, else NaN
    category      object    product category name where there is one, else None

Snapshot frame (one row per customer and day): ``customer_id``, ``as_of`` (date) and the
FEATURES columns below.
"""

# --- event types ---------------------------------------------------------------------
# Codes are stable identifiers stored in the database; labels for people live in
# oscar_journeys/events.py (translated).
USER_REGISTERED = "user_registered"
USER_LOGGED_IN = "user_logged_in"
BASKET_ADDITION = "basket_addition"
BASKET_LINE_REMOVAL = "basket_line_removal"
VOUCHER_ADDITION = "voucher_addition"
VOUCHER_REMOVAL = "voucher_removal"
PRODUCT_VIEWED = "product_viewed"
USER_SEARCH = "user_search"
CHECKOUT_STARTED = "checkout_started"
ORDER_PLACED = "order_placed"
PRODUCT_ORDERED = "product_ordered"
ORDER_STATUS_CHANGED = "order_status_changed"
ORDER_CANCELLED = "order_cancelled"
ORDER_LINE_STATUS_CHANGED = "order_line_status_changed"
ORDER_LINE_RETURNED = "order_line_returned"
REVIEW_ADDED = "review_added"
MESSAGE_OPENED = "message_opened"
MESSAGE_CLICKED = "message_clicked"
CONSENT_GRANTED = "consent_granted"
CONSENT_WITHDRAWN = "consent_withdrawn"
LIFECYCLE_STAGE_CHANGED = "lifecycle_stage_changed"  # recorded by the nightly chain

EVENT_TYPES = (
    USER_REGISTERED,
    USER_LOGGED_IN,
    BASKET_ADDITION,
    BASKET_LINE_REMOVAL,
    VOUCHER_ADDITION,
    VOUCHER_REMOVAL,
    PRODUCT_VIEWED,
    USER_SEARCH,
    CHECKOUT_STARTED,
    ORDER_PLACED,
    PRODUCT_ORDERED,
    ORDER_STATUS_CHANGED,
    ORDER_CANCELLED,
    ORDER_LINE_STATUS_CHANGED,
    ORDER_LINE_RETURNED,
    REVIEW_ADDED,
    MESSAGE_OPENED,
    MESSAGE_CLICKED,
    CONSENT_GRANTED,
    CONSENT_WITHDRAWN,
    LIFECYCLE_STAGE_CHANGED,
)

# Events that show the customer paying attention (for days_since_last_engagement).
ENGAGEMENT_TYPES = (
    USER_REGISTERED,
    USER_LOGGED_IN,
    BASKET_ADDITION,
    BASKET_LINE_REMOVAL,
    VOUCHER_ADDITION,
    PRODUCT_VIEWED,
    USER_SEARCH,
    CHECKOUT_STARTED,
    ORDER_PLACED,
    REVIEW_ADDED,
    MESSAGE_OPENED,
    MESSAGE_CLICKED,
)

# Types only the app itself records: the API and CSV import refuse them.
INTERNAL_TYPES = (LIFECYCLE_STAGE_CHANGED,)

EVENT_COLUMNS = ("customer_id", "type", "occurred_at", "value", "category")

# --- snapshot features ----------------------------------------------------------------
# name -> (kind, description). kind: "int", "float" (NaN allowed), "str", "list".
FEATURES = {
    "tenure_days": ("float", "Days since the customer's first event."),
    "frequency": ("int", "Orders placed so far."),
    "monetary": ("float", "Total value of orders placed so far."),
    "avg_order_value": ("float", "Mean order value; NaN without orders."),
    "recency_days": ("float", "Days since the last order; NaN without orders."),
    "first_order_days": ("float", "Days since the first order; NaN without orders."),
    "avg_days_between_orders": ("float", "Mean gap between orders; NaN below two orders."),
    "orders_90d": ("int", "Orders in the last 90 days."),
    "revenue_90d": ("float", "Order value in the last 90 days."),
    "days_since_last_engagement": ("float", "Days since the last engagement event."),
    "product_views_30d": ("int", "Product views in the last 30 days."),
    "basket_additions_30d": ("int", "Basket additions in the last 30 days."),
    "searches_30d": ("int", "Searches in the last 30 days."),
    "logins_30d": ("int", "Log-ins in the last 30 days."),
    "open_basket_value": ("float", "Value added to the basket since the last order, less removals."),
    "cancellations": ("int", "Orders cancelled so far."),
    "returns": ("int", "Order lines returned so far."),
    "messages_opened_90d": ("int", "Messages opened in the last 90 days."),
    "messages_clicked_90d": ("int", "Messages clicked in the last 90 days."),
    "favourite_category": ("str", "Category the customer bought or viewed most."),
    "favourite_categories": ("list", "Up to three favourite categories, best first."),
}
FEATURE_NAMES = tuple(FEATURES)
NUMERIC_FEATURES = tuple(n for n, (kind, _) in FEATURES.items() if kind in ("int", "float"))
SNAPSHOT_COLUMNS = ("customer_id", "as_of", *FEATURE_NAMES)

# --- segments and predictions ---------------------------------------------------------
# The nightly chain writes these onto each snapshot row, beside the features. Codes are
# stable identifiers; labels for people live on the Django side (translated).

# Lifecycle stages (oscar_journeys.ml.lifecycle). "prospect": no order yet.
PROSPECT, NEW, ACTIVE, HIGH_VALUE, AT_RISK, CHURNED, REACTIVATED = (
    "prospect", "new", "active", "high_value", "at_risk", "churned", "reactivated",
)
STAGES = (PROSPECT, NEW, ACTIVE, HIGH_VALUE, AT_RISK, CHURNED, REACTIVATED)

# Named RFM segments (oscar_journeys.ml.rfm).
RFM_SEGMENTS = (
    "champions", "loyal", "potential_loyalist", "new_customers", "promising", "need_attention",
    "about_to_sleep", "cannot_lose", "at_risk", "hibernating", "lost",
)

# name -> (dtype, description). "str" columns hold "" when unknown; the others NaN / <NA>.
SCORES = {
    "lifecycle_stage": ("str", "One of STAGES."),
    "rfm_score": ("str", "Recency, frequency and monetary scores 1-5 as three digits ('545'); '' without orders."),
    "rfm_segment": ("str", "One of RFM_SEGMENTS; '' without orders."),
    "micro_segment": ("Int64", "Stable id of the learned micro-segment."),
    "churn_probability": ("float", "Calibrated probability of no order within the churn horizon; NaN without orders."),
    "prob_alive": ("float", "BG/NBD probability that the customer is still active; NaN without orders."),
    "expected_orders": ("float", "BG/NBD expected orders within the CLV horizon."),
    "clv": ("float", "Expected order value within the CLV horizon (BG/NBD x gamma-gamma)."),
    "next_order_days": ("float", "Days from the snapshot day to the expected next order; NaN when not expected."),
}
SCORE_NAMES = tuple(SCORES)

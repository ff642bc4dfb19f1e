"""Event types with labels for people, and what the API and CSV import accept."""

from django.utils.translation import gettext_lazy as _

from . import app_settings
from .ml import schema

LABELS = {
    schema.USER_REGISTERED: _("Registered"),
    schema.USER_LOGGED_IN: _("Logged in"),
    schema.BASKET_ADDITION: _("Added to basket"),
    schema.BASKET_LINE_REMOVAL: _("Removed from basket"),
    schema.VOUCHER_ADDITION: _("Added a voucher"),
    schema.VOUCHER_REMOVAL: _("Removed a voucher"),
    schema.PRODUCT_VIEWED: _("Viewed a product"),
    schema.USER_SEARCH: _("Searched"),
    schema.CHECKOUT_STARTED: _("Started checkout"),
    schema.ORDER_PLACED: _("Placed an order"),
    schema.PRODUCT_ORDERED: _("Ordered a product"),
    schema.ORDER_STATUS_CHANGED: _("Order status changed"),
    schema.ORDER_CANCELLED: _("Cancelled an order"),
    schema.ORDER_LINE_STATUS_CHANGED: _("Order line status changed"),
    schema.ORDER_LINE_RETURNED: _("Returned a product"),
    schema.REVIEW_ADDED: _("Reviewed a product"),
    schema.MESSAGE_OPENED: _("Opened a message"),
    schema.MESSAGE_CLICKED: _("Clicked a message"),
    schema.CONSENT_GRANTED: _("Gave marketing consent"),
    schema.CONSENT_WITHDRAWN: _("Withdrew marketing consent"),
    schema.LIFECYCLE_STAGE_CHANGED: _("Changed lifecycle stage"),
}


def event_types():
    """{code: label} of every type the shop accepts: the built-in ones and the extra
    ones set in OSCAR_JOURNEYS_EXTRA_EVENT_TYPES."""
    return {**LABELS, **app_settings.EXTRA_EVENT_TYPES}


def label(code):
    return event_types().get(code, code)

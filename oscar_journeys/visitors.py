"""From a storefront request (or an order) to the customer it belongs to.

The visitor's customer id is kept in the session with the user it belongs to, so the
receivers on the storefront's hot paths usually need no query to find it."""

from . import app_settings
from .models import Customer, CustomerIdentifier
from .services import customers as identity


def forget_session_customer(request):
    """Drop the session's customer; True if it named one."""
    session = getattr(request, "session", None)
    if session is None or not session.get(app_settings.SESSION_KEY):
        return False
    for suffix in ("", "_user", "_basket"):
        session.pop(app_settings.SESSION_KEY + suffix, None)
    return True


def _is_authenticated(user):
    return user is not None and getattr(user, "is_authenticated", False)


def customer_for_request(request, user=None):
    """The customer behind a storefront request. Its id is kept in the session with the
    user it belongs to, so the common case costs no query. If that customer has since been
    merged, events still recorded for it are moved by ``timeline_repair``."""
    if user is None:
        user = getattr(request, "user", None)
    user_id = user.pk if _is_authenticated(user) else None
    session = getattr(request, "session", None)
    key = app_settings.SESSION_KEY
    if session is not None and session.get(key) and session.get(key + "_user") == user_id:
        return Customer(pk=session[key], user_id=user_id)
    if user_id is not None:
        customer = identity.customer_for_user(user)
    else:
        customer = Customer.objects.create()
    remember_customer(request, customer, user_id)
    return customer


def remember_customer(request, customer, user_id):
    session = getattr(request, "session", None)
    if session is not None:
        key = app_settings.SESSION_KEY
        session[key] = customer.canonical_id
        session[key + "_user"] = user_id


def customer_for_order(order):
    """The order's customer; on the checkout path usually from the cache, with no query."""
    if order.user_id:
        pk = identity.cached_customer_id("user", order.user_id)
        return Customer(pk=pk) if pk else identity.customer_for_user(order.user)
    if order.guest_email:
        email = identity.normalize_email(order.guest_email)
        pk = identity.cached_customer_id(CustomerIdentifier.EMAIL, email)
        return Customer(pk=pk) if pk else identity.customer_for_email(email)
    return None


def remember_basket(request, customer, basket):
    """Record the basket as an identifier of the customer, once per basket and session."""
    session = getattr(request, "session", None)
    if basket is None or not basket.pk or session is None:
        return
    key = app_settings.SESSION_KEY + "_basket"
    if session.get(key) != basket.pk:
        identity.add_identifier(customer, CustomerIdentifier.BASKET, str(basket.pk))
        session[key] = basket.pk


def link_on_commit(customer_id, *, user_id, reason):
    from .tasks import customer_link, enqueue_on_commit

    enqueue_on_commit(customer_link, customer_id, user_id, reason)


def identify_visitor(request, user, reason):
    """On log-in or registration: the visitor's session customer joins the account's."""
    session = getattr(request, "session", None)
    key = app_settings.SESSION_KEY
    visitor_id = session.get(key) if session is not None else None
    customer = identity.customer_for_user(user)
    if visitor_id and visitor_id != customer.pk:
        link_on_commit(visitor_id, user_id=user.pk, reason=reason)
    remember_customer(request, customer, user.pk)
    return customer

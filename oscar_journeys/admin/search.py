"""Index-friendly searches for the changelists of big tables.

Django's default admin search runs ``icontains`` on every field, which scans the whole
table. With a million customers and tens of millions of events, we look the term up
where an index can answer instead: an email or phone through the identifiers (unique on
kind and value) and ``Customer.email``; a number as a customer id. Only names are matched
with ``icontains``.
"""

from django.contrib.auth import get_user_model
from django.db.models import Q

from ..exceptions import InvalidEventError
from ..models import Customer, CustomerIdentifier
from ..services.customers import normalize_phone


def _phone_or_none(term):
    try:
        return normalize_phone(term)
    except InvalidEventError:
        return None


def customer_ids_for_term(term):
    """Ids of the customer records an email, phone, customer id or identifier value
    points at (merged records included). Runs a few indexed queries."""
    term = term.strip()
    ids = set()
    if not term:
        return ids
    if "@" in term:
        email = term.lower()
        ids.update(
            CustomerIdentifier.objects.filter(kind=CustomerIdentifier.EMAIL, value=email).values_list(
                "customer_id", flat=True
            )
        )
        ids.update(Customer.objects.filter(email=email).values_list("pk", flat=True))
        users = get_user_model()._default_manager.filter(email__iexact=term).values("pk")
        ids.update(Customer.objects.filter(user__in=users).values_list("pk", flat=True))
        return ids
    if term.isdigit() and len(term) < 19:
        ids.add(int(term))
    phone = _phone_or_none(term)
    if phone:
        ids.update(
            CustomerIdentifier.objects.filter(kind=CustomerIdentifier.PHONE, value=phone).values_list(
                "customer_id", flat=True
            )
        )
    # Any identifier given verbatim: an external id is stored as "<source>:<id>".
    kinds = [kind for kind, _ in CustomerIdentifier.KIND_CHOICES]
    ids.update(
        CustomerIdentifier.objects.filter(kind__in=kinds, value=term).values_list("customer_id", flat=True)
    )
    return ids


def canonical_ids(ids):
    """The customers that hold the timelines of ``ids`` (merged records map to their survivor)."""
    rows = Customer.objects.filter(pk__in=ids).values_list("pk", "merged_into_id")
    return {merged_into or pk for pk, merged_into in rows}


def name_query(term):
    """Every word of ``term`` in the first or the last name."""
    query = Q()
    for word in term.split():
        query &= Q(first_name__icontains=word) | Q(last_name__icontains=word)
    return query

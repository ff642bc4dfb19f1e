"""Events from other systems: one way in for the API and the CSV import.

Items are validated by ``ingest_validation.event_clean`` (fields documented in docs/api.md).
``events_ingest`` records a batch: every valid item is stored exactly once per
``(source, event_id)``. An item whose key is stored already with the same content is a
duplicate (nothing is written); with other content it is a conflict. The content compared is
the event's type, time, value, currency, category, product and properties, and who it is
about (every identifier given must belong to the customer the stored event is on); profile
hints (names, date of birth) are not compared.
"""

import logging
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils.translation import gettext as _
from oscar.core.loading import get_model

from ..exceptions import InvalidEventError
from ..models import Customer, CustomerIdentifier, Event
from .customers import customer_identify
from .ingest_validation import FIELDS, PROFILE_FIELDS, CleanEvent, Rules, event_clean, show_value
from .timeline import timeline_record_events

__all__ = ["FIELDS", "STATUSES", "CleanEvent", "ItemResult", "Rules", "batch_counts", "event_clean", "events_ingest"]

logger = logging.getLogger(__name__)

CREATED, DUPLICATE, REJECTED, CONFLICT = "created", "duplicate", "rejected", "conflict"
STATUSES = (CREATED, DUPLICATE, REJECTED, CONFLICT)
INSERT_ATTEMPTS = 3


@dataclass
class ItemResult:
    """The outcome of one item: ``status`` is one of STATUSES; ``errors`` maps field names to
    messages for rejected and conflicting items; ``event`` is the new Event when created."""

    index: int
    event_id: str | None
    status: str
    errors: dict | None = None
    event: Event | None = None


def events_ingest(*, source, items, now, customers=None):
    """Validate and record a batch of items from ``source`` (an EventSource); return one
    ItemResult per item, in order.

    Valid items are recorded even when others are rejected. Duplicate keys within the batch:
    the first wins; an identical repeat is a duplicate, a differing one a conflict.
    ``customers`` is an optional dict that caches identity look-ups across calls (the CSV
    import passes one for the whole file). Runs in one transaction."""
    rules = Rules.at(now)
    results = [None] * len(items)
    cleaned = {}
    for index, item in enumerate(items):
        try:
            cleaned[index] = event_clean(item, rules=rules)
        except InvalidEventError as error:
            results[index] = ItemResult(index, _given_id(item), REJECTED, error.errors)
    customers = {} if customers is None else customers
    with transaction.atomic():
        repeats = {}
        for attempt in range(INSERT_ATTEMPTS):
            todo = {i: c for i, c in cleaned.items() if results[i] is None and i not in repeats}
            if not todo:
                break
            pending, found_repeats = _classify(source.name, todo, results)
            repeats.update(found_repeats)
            try:
                _record(source.name, pending, results, now, customers)
                break
            except IntegrityError:
                # A concurrent request stored some of these keys first: look them up again.
                if attempt == INSERT_ATTEMPTS - 1:
                    raise
                logger.info("event keys from %s were stored concurrently; retrying", source.name)
        for index, first in repeats.items():
            results[index] = _repeat_result(index, cleaned[index], cleaned[first], results[first])
    return results


def _given_id(item):
    raw = item.get("event_id") if isinstance(item, dict) else None
    return str(raw).strip() if isinstance(raw, (str, int)) and not isinstance(raw, bool) else None


def _classify(source_name, todo, results):
    """Set the result of items whose key is stored; return the new items (first in the
    batch for their key) and {index of a repeat: index of the first}."""
    stored = {
        row["idempotency_key"]: row
        for row in Event.objects.filter(
            source=source_name, idempotency_key__in={c.event_id for c in todo.values()}
        ).values("idempotency_key", "customer_id", "type", "occurred_at", "value", "currency", "category",
                 "product_id", "payload")
    }  # fmt: skip
    owners = _identifier_owners(
        [key for c in todo.values() if c.event_id in stored for key in c.identifier_keys(source_name)]
    )
    first_seen, pending, repeats = {}, [], {}
    for index in sorted(todo):
        clean = todo[index]
        row = stored.get(clean.event_id)
        if row is not None:
            if _same_as_stored(clean, row, owners, source_name):
                results[index] = ItemResult(index, clean.event_id, DUPLICATE)
            else:
                results[index] = ItemResult(index, clean.event_id, CONFLICT, _conflict_stored(clean, source_name))
        elif clean.event_id in first_seen:
            repeats[index] = first_seen[clean.event_id]
        else:
            first_seen[clean.event_id] = index
            pending.append((index, clean))
    return pending, repeats


def _identifier_owners(keys):
    """{(kind, value): canonical customer id} for the identifiers that are stored."""
    if not keys:
        return {}
    by_kind = {}
    for kind, value in keys:
        by_kind.setdefault(kind, set()).add(value)
    match = Q()
    for kind, values in by_kind.items():  # (kind, value) is the unique index: filter on both
        match |= Q(kind=kind, value__in=values)
    rows = CustomerIdentifier.objects.filter(match).values_list(
        "kind", "value", "customer_id", "customer__merged_into_id"
    )
    return {(kind, value): merged or pk for kind, value, pk, merged in rows}


def _same_as_stored(clean, row, owners, source_name):
    stored = (row["type"], row["occurred_at"], row["value"], row["currency"], row["category"], row["product_id"],
              row["payload"])  # fmt: skip
    given = (clean.type, clean.occurred_at, clean.value, clean.currency, clean.category, clean.product_id,
             clean.properties)  # fmt: skip
    if stored != given:
        return False
    return all(owners.get(key) == row["customer_id"] for key in clean.identifier_keys(source_name))


def _conflict_stored(clean, source_name):
    return {
        "event_id": _(
            "event_id %(value)s was already received from source %(source)s with different content; "
            "give each new event a new event_id."
        )
        % {"value": show_value(clean.event_id), "source": show_value(source_name)}
    }


def _repeat_result(index, clean, first_clean, first):
    if clean.content() != first_clean.content():
        message = _("event_id %(value)s appears earlier in this batch (item %(first)d) with different content.") % {
            "value": show_value(clean.event_id),
            "first": first.index,
        }
        return ItemResult(index, clean.event_id, CONFLICT, {"event_id": message})
    if first.status == REJECTED:
        return ItemResult(index, clean.event_id, REJECTED, first.errors)
    status = DUPLICATE if first.status == CREATED else first.status
    return ItemResult(index, clean.event_id, status, first.errors)


def _record(source_name, pending, results, now, customers):
    """Resolve customers and products of the new items and insert them in bulk."""
    product_ids = {clean.product_id for _index, clean in pending if clean.product_id}
    known_products = set()
    if product_ids:
        Product = get_model("catalogue", "Product")
        known_products = set(Product._default_manager.filter(pk__in=product_ids).values_list("pk", flat=True))
    known = []
    for index, clean in pending:
        if clean.product_id and clean.product_id not in known_products:
            message = _("product_id %(value)s is not a product in the catalogue.") % {"value": clean.product_id}
            results[index] = ItemResult(index, clean.event_id, REJECTED, {"product_id": message})
        else:
            known.append((index, clean))
    resolved, errors = _resolve_customers(source_name, known, customers)
    ready = []
    for index, clean in known:
        if index in errors:
            results[index] = ItemResult(index, clean.event_id, REJECTED, errors[index])
        else:
            ready.append((index, clean, resolved[index]))
    canonical = dict(
        Customer.objects.filter(pk__in={pk for _index, _clean, pk in ready}).values_list("pk", "merged_into_id")
    )
    new = [
        Event(
            customer_id=canonical.get(pk) or pk,
            recorded_for_id=pk,
            type=clean.type,
            occurred_at=clean.occurred_at,
            recorded_at=now,
            source=source_name,
            idempotency_key=clean.event_id,
            value=clean.value,
            currency=clean.currency,
            category=clean.category,
            product_id=clean.product_id,
            payload=clean.properties,
        )
        for _index, clean, pk in ready
    ]
    if not new:
        return
    with transaction.atomic():
        created = timeline_record_events(new)
    for (index, clean, _pk), event in zip(ready, created):
        results[index] = ItemResult(index, clean.event_id, CREATED, event=event)


# --- customers --------------------------------------------------------------------------------

PROFILE_COLUMNS = ("email", "phone") + PROFILE_FIELDS


def _identity(clean):
    return (clean.email, clean.phone, clean.external_id, clean.first_name, clean.last_name, clean.date_of_birth)


def _resolve_customers(source_name, items, cache):
    """The customer of each item: ``({index: customer pk}, {index: errors})``, with the
    same outcome as calling ``customer_identify`` for each item in turn, in fewer queries.

    ``cache`` maps identities already resolved to customer pks. Items that share an
    identifier are one person; a person none of whose identifiers is stored is created in
    bulk. An item whose identifiers all belong to one stored customer, and that has no
    profile field to fill in, takes that customer. The rest go through customer_identify."""
    found, errors, todo = {}, {}, []
    for index, clean in items:
        pk = cache.get(_identity(clean))
        if pk is None:
            todo.append((index, clean))
        else:
            found[index] = pk
    if not todo:
        return found, errors
    keys_of = {index: clean.identifier_keys(source_name) for index, clean in todo}
    owners = _identifier_owners([key for keys in keys_of.values() for key in keys])
    groups = _group_by_shared_identifiers(todo, keys_of)
    new = [group for group in groups if not any(key in owners for index, _clean in group for key in keys_of[index])]
    for index, clean, pk in _customers_create(source_name, new, keys_of):
        found[index] = cache[_identity(clean)] = pk
    profiles = {
        row["pk"]: row for row in Customer.objects.filter(pk__in=set(owners.values())).values("pk", *PROFILE_COLUMNS)
    }
    for index, clean in todo:
        if index in found:
            continue
        identity = _identity(clean)
        pk = cache.get(identity) or _known_customer(clean, keys_of[index], owners, profiles)
        if pk is None:
            profile = {name: getattr(clean, name) for name in PROFILE_FIELDS if getattr(clean, name)}
            try:
                pk = customer_identify(
                    source=source_name,
                    email=clean.email or None,
                    phone=clean.phone or None,
                    external_id=clean.external_id or None,
                    **profile,
                ).pk
            except InvalidEventError as error:
                errors[index] = error.errors
                continue
        found[index] = cache[identity] = pk
    return found, errors


def _group_by_shared_identifiers(todo, keys_of):
    """Lists of items, each list the items linked by shared identifiers (union-find)."""
    parent = {}

    def root(key):
        while parent[key] != key:
            parent[key] = key = parent[parent[key]]
        return key

    for index, _clean in todo:
        keys = keys_of[index]
        for key in keys:
            parent.setdefault(key, key)
        for key in keys[1:]:
            parent[root(key)] = root(keys[0])
    groups = {}
    for index, clean in todo:
        groups.setdefault(root(keys_of[index][0]), []).append((index, clean))
    return list(groups.values())


def _customers_create(source_name, groups, keys_of):
    """Create one customer per group, with every identifier of the group, as customer_create
    would (profile fields from the first item that has them). Returns {index: pk}; {} when
    a concurrent request stored one of the identifiers first (the caller then identifies
    those items one by one)."""
    if not groups:
        return []
    customers, identifiers = [], []
    for group in groups:
        profile = {}
        for _index, clean in group:
            for name in PROFILE_COLUMNS:
                profile[name] = profile.get(name) or getattr(clean, name)
        customers.append(Customer(**profile))
    try:
        with transaction.atomic():
            Customer.objects.bulk_create(customers)
            for group, customer in zip(groups, customers):
                keys = dict.fromkeys(key for index, _clean in group for key in keys_of[index])
                identifiers += [
                    CustomerIdentifier(customer=customer, kind=kind, value=value, source=source_name)
                    for kind, value in keys
                ]
            CustomerIdentifier.objects.bulk_create(identifiers)
    except IntegrityError:
        return []
    return [(index, clean, customer.pk) for group, customer in zip(groups, customers) for index, clean in group]


def _known_customer(clean, keys, owners, profiles):
    """The stored customer that holds every identifier of the item, if there is one and the
    item has no profile field that customer lacks; else None."""
    holders = {owners.get(key) for key in keys}
    if len(holders) != 1 or None in holders:
        return None
    pk = holders.pop()
    profile = profiles.get(pk)
    if profile is None or any(getattr(clean, name) and not profile[name] for name in PROFILE_COLUMNS):
        return None
    return pk


def batch_counts(results):
    """{status: number of items} for every status."""
    counts = dict.fromkeys(STATUSES, 0)
    for result in results:
        counts[result.status] += 1
    return counts

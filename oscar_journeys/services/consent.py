"""Consent and suppression: may this customer be sent marketing on this kind of channel?

Three things decide it, per channel kind:

- the address: email from ``Customer.email``, SMS from ``Customer.phone`` (E.164, as the
  identity service stores it), push from the customer's latest ``CustomerIdentifier`` of
  kind "push", webhook the customer id itself;
- consent, per ``OSCAR_JOURNEYS_CONSENT_REQUIRED[kind]``: "opt_in" needs a ``Consent`` row
  with granted=True; "soft_opt_in" counts customers with an account or at least one order
  as consenting unless a ``Consent`` row says no (EU ePrivacy art. 13(2)); "none" always;
- the suppression list: an address that unsubscribed, bounced, complained or texted STOP
  (``Suppression``, keyed on the hashed address, so it outlives the customer record).

``reachability`` answers for many customers at once (the decision round),
``message_blocks`` for a batch of messages at send time (``can_message`` for one).
"""

import logging
import re

import numpy as np
import pandas as pd
import phonenumbers
from django.db import IntegrityError, transaction
from django.utils import timezone

from .. import app_settings
from ..exceptions import JourneysError
from ..ml import schema
from ..models import Consent, Customer, CustomerIdentifier, Event, Suppression
from ..models.channels import EMAIL, KIND_CHOICES, PUSH, SMS, WEBHOOK
from ..models.consent import address_hash
from ..selectors import chunks, values_for_ids
from .timeline import timeline_record_event

logger = logging.getLogger(__name__)

KINDS = tuple(kind for kind, _label in KIND_CHOICES)
OPT_IN, SOFT_OPT_IN, NONE = "opt_in", "soft_opt_in", "none"
# Reason codes, as Decision.reason stores them.
NO_CONSENT, SUPPRESSED, UNREACHABLE = "no_consent", "suppressed", "unreachable"


def _check_kinds(kinds):
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise JourneysError(f"unknown channel kinds {sorted(unknown)}; expected some of {list(KINDS)}")


def policy(kind):
    """The consent policy for a channel kind; an unknown value counts as "opt_in"."""
    value = (app_settings.CONSENT_REQUIRED or {}).get(kind, OPT_IN)
    return value if value in (OPT_IN, SOFT_OPT_IN, NONE) else OPT_IN


def normalize_address(kind, address):
    """The form addresses are stored and hashed in: lower-cased email, E.164 phone."""
    address = (address or "").strip()
    if kind == EMAIL:
        return address.lower()
    if kind == SMS and address:
        return _e164(address)
    return address


def _e164(phone):
    """E.164 form of a phone number: as the identity service writes it when it is valid,
    else the same formatting without the validity check (test and reserved ranges)."""
    from .customers import normalize_phone

    try:
        return normalize_phone(phone)
    except JourneysError:
        pass
    try:
        number = phonenumbers.parse(phone, app_settings.DEFAULT_PHONE_REGION)
    except phonenumbers.NumberParseException:
        return re.sub(r"[^0-9+]", "", phone)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# --- bulk -----------------------------------------------------------------------------------


def _stated(customer_ids, kinds):
    """{(customer_id, kind): granted} of the Consent rows of these customers."""
    rows = values_for_ids(Consent.objects.filter(channel_kind__in=list(kinds)), "customer_id", customer_ids,
                          "channel_kind", "granted")
    return {(customer_id, kind): granted for customer_id, kind, granted in rows}


def _buyers(customer_ids):
    """The customers among ``customer_ids`` who have placed an order (soft opt-in)."""
    if not len(customer_ids):
        return set()
    events = Event.objects.filter(type=schema.ORDER_PLACED).order_by()
    return {customer_id for (customer_id,) in values_for_ids(events, "customer_id", customer_ids)}


def _consenting(kind, customer_ids, stated, has_account):
    """Per customer id (a list), whether the policy for ``kind`` lets us message them:
    ``stated`` holds their Consent rows, ``has_account`` the ids with a user account. The
    order history is read only for the soft opt-in customers it can decide."""
    rule = policy(kind)
    if rule == NONE:
        return [True] * len(customer_ids)
    said = [stated.get((pk, kind)) for pk in customer_ids]
    if rule != SOFT_OPT_IN:
        return [value is True for value in said]
    undecided = [pk for pk, value in zip(customer_ids, said) if value is None and pk not in has_account]
    buyers = _buyers(undecided)
    return [
        value if value is not None else (pk in has_account or pk in buyers) for pk, value in zip(customer_ids, said)
    ]


def reachability(*, customer_ids, kinds):
    """A DataFrame indexed by ``customer_id`` with, per kind in ``kinds``, the columns
    ``<kind>_address`` (str, "" when there is none), ``<kind>_consent`` (bool, per the
    policy) and ``<kind>_suppressed`` (bool). Unknown customer ids get a row with no address
    and no consent. A few queries whatever the number of customers and kinds
    (``selectors.values_for_ids``)."""
    kinds = list(dict.fromkeys(kinds))
    _check_kinds(kinds)
    ids = list(dict.fromkeys(int(pk) for pk in customer_ids))
    frame = pd.DataFrame(index=pd.Index(ids, name="customer_id", dtype="int64"))
    if not kinds or not ids:
        for kind in kinds:
            frame[f"{kind}_address"], frame[f"{kind}_consent"], frame[f"{kind}_suppressed"] = "", False, False
        return frame
    rows = values_for_ids(Customer.objects.all(), "pk", ids, "email", "phone", "user_id")
    customers = pd.DataFrame(rows, columns=["customer_id", "email", "phone", "user_id"]).set_index("customer_id")
    customers = customers.reindex(frame.index)
    known = customers["email"].notna().to_numpy()
    addresses = {
        EMAIL: lambda: customers["email"].fillna("").str.strip().str.lower(),
        SMS: lambda: customers["phone"].fillna("").str.strip(),
        PUSH: lambda: _push_tokens(ids).reindex(frame.index).fillna(""),
        WEBHOOK: lambda: pd.Series(frame.index.astype(str), index=frame.index).where(known, ""),
    }
    has_account = set(customers.index[customers["user_id"].notna().to_numpy()].tolist())
    stated = _stated(ids, kinds)
    for kind in kinds:
        address = addresses[kind]().astype(str)
        frame[f"{kind}_address"] = address
        frame[f"{kind}_consent"] = _consenting(kind, ids, stated, has_account)
        frame[f"{kind}_suppressed"] = _suppressed_hashes(kind, address.to_numpy()).tolist()
    return frame


def _push_tokens(customer_ids):
    """The latest push token of each customer, as a Series by customer id."""
    identifiers = CustomerIdentifier.objects.filter(kind=CustomerIdentifier.PUSH).order_by("customer_id", "pk")
    return pd.Series(dict(values_for_ids(identifiers, "customer_id", customer_ids, "value")), dtype="object")


def _suppressed_hashes(kind, addresses):
    """Per address (already normalized; "" for none), whether it is on the suppression
    list for ``kind``. A short list is read whole; a long one is asked about these hashes."""
    listed = Suppression.objects.filter(channel_kind=kind)
    size = listed.count()
    if not size:
        return np.zeros(len(addresses), dtype=bool)
    hashes = [address_hash(kind, value) if value else "" for value in addresses]
    wanted = sorted(set(hashes) - {""})
    if size <= len(wanted):
        found = set(listed.values_list("address_hash", flat=True))
    else:
        found = set()
        for chunk in chunks(wanted):
            found.update(listed.filter(address_hash__in=chunk).values_list("address_hash", flat=True))
    return np.array([bool(h) and h in found for h in hashes], dtype=bool)


def message_blocks(items):
    """For each ``(customer, kind, address)`` in ``items``, "" when the customer may be sent
    marketing at ``address`` on a ``kind`` channel now, else the reason: "unreachable",
    "suppressed" or "no_consent" (Decision reason codes). The send-time re-check of a batch
    (a customer who unsubscribed after the decision gets nothing), in a few queries."""
    items = list(items)
    _check_kinds({kind for _customer, kind, _address in items})
    customer_ids = sorted({customer.pk for customer, _kind, _address in items})
    kinds = sorted({kind for _customer, kind, _address in items})
    stated = _stated(customer_ids, kinds) if any(policy(kind) != NONE for kind in kinds) else {}
    has_account = {customer.pk for customer, _kind, _address in items if customer.user_id}
    reasons = [""] * len(items)
    for kind in kinds:
        at = [i for i, (_customer, k, _address) in enumerate(items) if k == kind]
        addresses = [normalize_address(kind, items[i][2]) for i in at]
        suppressed = _suppressed_hashes(kind, addresses)
        consenting = _consenting(kind, [items[i][0].pk for i in at], stated, has_account)
        for i, address, blocked, allowed in zip(at, addresses, suppressed, consenting):
            reasons[i] = UNREACHABLE if not address else SUPPRESSED if blocked else "" if allowed else NO_CONSENT
    return reasons


# --- one customer ---------------------------------------------------------------------------


def address_for(customer, kind):
    """The customer's address on a channel kind ("" when there is none)."""
    if kind == EMAIL:
        return (customer.email or "").strip().lower()
    if kind == SMS:
        return (customer.phone or "").strip()
    if kind == PUSH:
        return (
            CustomerIdentifier.objects.filter(customer_id=customer.pk, kind=CustomerIdentifier.PUSH)
            .order_by("-pk")
            .values_list("value", flat=True)
            .first()
            or ""
        )
    if kind == WEBHOOK:
        return str(customer.pk)
    raise JourneysError(f"unknown channel kind {kind!r}")


def has_consent(*, customer, kind):
    """Whether the policy for ``kind`` lets us message ``customer`` (suppression aside)."""
    _check_kinds([kind])
    stated = _stated([customer.pk], [kind]) if policy(kind) != NONE else {}
    return _consenting(kind, [customer.pk], stated, {customer.pk} if customer.user_id else set())[0]


def is_suppressed(*, kind, address):
    _check_kinds([kind])
    return bool(_suppressed_hashes(kind, [normalize_address(kind, address)])[0])


def can_message(*, customer, kind, address):
    """``message_blocks`` for one message."""
    return message_blocks([(customer, kind, address)])[0]


# --- changes --------------------------------------------------------------------------------


@transaction.atomic
def consent_set(*, customer, kind, granted, source, wording="", now=None):
    """Record that ``customer`` gave (``granted=True``) or withdrew consent for ``kind``
    channels, from ``source`` ("checkout", "preferences", "unsubscribe_link", "sms_stop"...).
    Writes a consent_granted / consent_withdrawn event on the timeline when the state
    changes. Returns ``(consent, changed)``; setting the state it already has changes
    nothing."""
    _check_kinds([kind])
    now = now or timezone.now()
    customer_id = customer.merged_into_id or customer.pk
    consent = Consent.objects.select_for_update().filter(customer_id=customer_id, channel_kind=kind).first()
    if consent is not None and consent.granted == bool(granted):
        return consent, False
    if consent is None:
        consent = Consent(customer_id=customer_id, channel_kind=kind)
    consent.granted = bool(granted)
    consent.source = source[:64]
    consent.wording = (wording or "")[:255]
    consent.changed_at = now
    try:
        with transaction.atomic():
            consent.save()
    except IntegrityError:
        # Another request created the row first: apply ours on top of it.
        consent = Consent.objects.select_for_update().get(customer_id=customer_id, channel_kind=kind)
        if consent.granted == bool(granted):
            return consent, False
        consent.granted, consent.source, consent.wording, consent.changed_at = bool(granted), source[:64], wording, now
        consent.save()
    timeline_record_event(
        customer=customer,
        type=schema.CONSENT_GRANTED if granted else schema.CONSENT_WITHDRAWN,
        occurred_at=now,
        source="journeys",
        payload={"channel_kind": kind, "source": source, "wording": wording},
    )
    logger.info("customer %s %s %s consent (%s)", customer_id, "gave" if granted else "withdrew", kind, source)
    return consent, True


def suppress(*, kind, address, reason, detail="", now=None):
    """Put ``address`` on the suppression list for ``kind`` channels. Returns
    ``(suppression, created)``; an address already on the list keeps its first entry."""
    _check_kinds([kind])
    address = normalize_address(kind, address)
    if not address:
        raise JourneysError(f"cannot suppress an empty {kind} address")
    if reason not in dict(Suppression.REASON_CHOICES):
        raise JourneysError(f"unknown suppression reason {reason!r}")
    key = address_hash(kind, address)
    try:
        with transaction.atomic():
            suppression, created = Suppression.objects.get_or_create(
                channel_kind=kind,
                address_hash=key,
                defaults={"reason": reason, "detail": (detail or "")[:255], "created_at": now or timezone.now()},
            )
    except IntegrityError:
        suppression, created = Suppression.objects.get(channel_kind=kind, address_hash=key), False
    if created:
        logger.info("suppressed a %s address (%s)", kind, reason)
    return suppression, created


def unsuppress(*, kind, address, reasons=None):
    """Take ``address`` off the suppression list (only entries with one of ``reasons``,
    when given: opting in again lifts an unsubscribe, not a hard bounce). Returns how many
    entries were removed."""
    _check_kinds([kind])
    address = normalize_address(kind, address)
    if not address:
        return 0
    entries = Suppression.objects.filter(channel_kind=kind, address_hash=address_hash(kind, address))
    if reasons is not None:
        entries = entries.filter(reason__in=list(reasons))
    removed, _detail = entries.delete()
    return removed

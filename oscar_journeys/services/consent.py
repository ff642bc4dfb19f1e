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

``reachability`` answers for many customers at once (the decision round), ``can_message``
for one message at send time.
"""

import logging
import re

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
from .timeline import timeline_record_event

logger = logging.getLogger(__name__)

KINDS = tuple(kind for kind, _label in KIND_CHOICES)
OPT_IN, SOFT_OPT_IN, NONE = "opt_in", "soft_opt_in", "none"
# Reason codes, as Decision.reason stores them.
NO_CONSENT, SUPPRESSED, UNREACHABLE = "no_consent", "suppressed", "unreachable"
# Query parameters per statement: SQLite's limit is 999 on old builds.
CHUNK = 900


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


def _chunks(ids):
    ids = list(ids)
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


# --- bulk -----------------------------------------------------------------------------------


def reachability(*, customer_ids, kinds):
    """A DataFrame indexed by ``customer_id`` with, per kind in ``kinds``, the columns
    ``<kind>_address`` (str, "" when there is none), ``<kind>_consent`` (bool, per the
    policy) and ``<kind>_suppressed`` (bool). Unknown customer ids get a row with no address
    and no consent. A few queries per 900 customers, whatever the kinds."""
    kinds = list(dict.fromkeys(kinds))
    _check_kinds(kinds)
    ids = list(dict.fromkeys(int(pk) for pk in customer_ids))
    frame = pd.DataFrame(index=pd.Index(ids, name="customer_id", dtype="int64"))
    if not kinds:
        return frame
    rows, push, consents, buyers = [], [], [], set()
    soft = any(policy(kind) == SOFT_OPT_IN for kind in kinds)
    for chunk in _chunks(ids):
        rows.extend(Customer.objects.filter(pk__in=chunk).values_list("pk", "email", "phone", "user_id"))
        if PUSH in kinds:
            push.extend(
                CustomerIdentifier.objects.filter(customer_id__in=chunk, kind=CustomerIdentifier.PUSH)
                .order_by("customer_id", "pk")
                .values_list("customer_id", "value")
            )
        consents.extend(
            Consent.objects.filter(customer_id__in=chunk, channel_kind__in=kinds).values_list(
                "customer_id", "channel_kind", "granted"
            )
        )
        if soft:
            buyers.update(
                Event.objects.filter(customer_id__in=chunk, type=schema.ORDER_PLACED)
                .order_by()
                .values_list("customer_id", flat=True)
                .distinct()
            )
    customers = pd.DataFrame(rows, columns=["customer_id", "email", "phone", "user_id"]).set_index("customer_id")
    customers = customers.reindex(frame.index)
    known = customers["email"].notna().to_numpy() if len(customers) else []
    addresses = {
        EMAIL: customers["email"].fillna("").str.strip().str.lower(),
        SMS: customers["phone"].fillna("").str.strip(),
        # The latest push token of each customer (rows are ordered by pk).
        PUSH: pd.Series(dict(push), dtype="object").reindex(frame.index).fillna(""),
        WEBHOOK: pd.Series(frame.index.astype(str), index=frame.index).where(known, ""),
    }
    has_account = customers["user_id"].notna() | frame.index.isin(list(buyers))
    stated = pd.DataFrame(consents, columns=["customer_id", "kind", "granted"])
    for kind in kinds:
        address = addresses[kind].astype(str)
        frame[f"{kind}_address"] = address
        rows_of_kind = stated[stated["kind"] == kind].set_index("customer_id")["granted"]
        said = rows_of_kind.reindex(frame.index)
        rule = policy(kind)
        if rule == NONE:
            consent = pd.Series(True, index=frame.index)
        elif rule == SOFT_OPT_IN:
            consent = (said == True) | (said.isna() & has_account)  # noqa: E712
        else:
            consent = said == True  # noqa: E712
        frame[f"{kind}_consent"] = consent.fillna(False).astype(bool).to_numpy()
        frame[f"{kind}_suppressed"] = _suppressed(kind, address).to_numpy()
    return frame


def _suppressed(kind, addresses):
    hashes = pd.Series(
        [address_hash(kind, value) if value else "" for value in addresses.to_numpy()], index=addresses.index
    )
    wanted = sorted(set(hashes) - {""})
    found = set()
    for chunk in _chunks(wanted):
        found.update(
            Suppression.objects.filter(channel_kind=kind, address_hash__in=chunk).values_list(
                "address_hash", flat=True
            )
        )
    return hashes.isin(found)


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
    rule = policy(kind)
    if rule == NONE:
        return True
    granted = Consent.objects.filter(customer_id=customer.pk, channel_kind=kind).values_list("granted", flat=True)
    granted = granted.first()
    if granted is not None:
        return granted
    if rule == SOFT_OPT_IN:
        return bool(customer.user_id) or Event.objects.filter(
            customer_id=customer.pk, type=schema.ORDER_PLACED
        ).exists()
    return False


def is_suppressed(*, kind, address):
    address = normalize_address(kind, address)
    return bool(address) and Suppression.objects.filter(
        channel_kind=kind, address_hash=address_hash(kind, address)
    ).exists()


def can_message(*, customer, kind, address):
    """"" when ``customer`` may be sent marketing at ``address`` on a ``kind`` channel now,
    else the reason: "unreachable", "suppressed" or "no_consent" (Decision reason codes).
    The send-time re-check: a customer who unsubscribed after the decision gets nothing."""
    _check_kinds([kind])
    if not (address or "").strip():
        return UNREACHABLE
    if is_suppressed(kind=kind, address=address):
        return SUPPRESSED
    if not has_consent(customer=customer, kind=kind):
        return NO_CONSENT
    return ""


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

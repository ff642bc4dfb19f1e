"""Identity: finding, creating and merging customers.

Every function returns the *canonical* customer (the one not merged into another)."""

import hashlib
import logging

import phonenumbers
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import app_settings
from ..exceptions import InvalidEventError, MergeError
from ..models import Customer, CustomerIdentifier, CustomerMerge, Event
from ..signals import customer_merged

logger = logging.getLogger(__name__)

PROFILE_FIELDS = ("email", "phone", "first_name", "last_name", "date_of_birth")


# --- normalisation ----------------------------------------------------------------------


def normalize_email(value):
    """Trim and lower-case an email address; raise InvalidEventError when it is not one."""
    email = (value or "").strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        raise InvalidEventError({"email": _("%(value)r is not a valid email address.") % {"value": value}})
    return email


def normalize_phone(value, region=None):
    """Return the number in E.164 (+447700900123); raise InvalidEventError otherwise."""
    region = region or app_settings.DEFAULT_PHONE_REGION
    try:
        number = phonenumbers.parse(str(value).strip(), region)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise InvalidEventError(
            {"phone": _("%(value)r is not a valid phone number (write it with its +country code).") % {"value": value}}
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# --- look-ups -----------------------------------------------------------------------------


def canonical(customer):
    """The customer this one is merged into, or itself."""
    if customer.merged_into_id is None:
        return customer
    return Customer.objects.get(pk=customer.merged_into_id)


def _id_cache_key(kind, value):
    return "oscar_journeys:customer-id:" + hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()


ID_CACHE_SECONDS = 24 * 3600


def cached_customer_id(kind, value):
    """The canonical customer id for an identifier (kind ``user``: an Oscar user id), from
    Django's cache when it can: the checkout path then costs no query. Merges and their
    reversal clear the keys they change; ``timeline_repair`` catches anything else."""
    key = _id_cache_key(kind, value)
    pk = cache.get(key)
    if pk is None:
        if kind == "user":
            row = Customer.objects.filter(user_id=value).values_list("pk", "merged_into_id").first()
        else:
            row = (
                CustomerIdentifier.objects.filter(kind=kind, value=value)
                .values_list("customer_id", "customer__merged_into_id")
                .first()
            )
        if row is None:
            return None
        pk = row[1] or row[0]
        cache.set(key, pk, ID_CACHE_SECONDS)
    return pk


def forget_cached_ids(*customers):
    """Drop the cached ids of every identifier (and user) of these customers."""
    keys = [
        _id_cache_key(kind, value)
        for kind, value in CustomerIdentifier.objects.filter(customer__in=customers).values_list("kind", "value")
    ]
    keys += [_id_cache_key("user", c.user_id) for c in customers if c.user_id]
    cache.delete_many(keys)


def customer_by_identifier(kind, value):
    try:
        ident = CustomerIdentifier.objects.select_related("customer").get(kind=kind, value=value)
    except CustomerIdentifier.DoesNotExist:
        return None
    customer = canonical(ident.customer)
    cache.set(_id_cache_key(kind, value), customer.pk, ID_CACHE_SECONDS)
    return customer


def add_identifier(customer, kind, value, source="oscar"):
    """Attach an identifier to the customer unless some customer already holds it.
    Returns the canonical customer that holds it afterwards."""
    try:
        with transaction.atomic():
            CustomerIdentifier.objects.create(customer=customer, kind=kind, value=value, source=source)
    except IntegrityError:
        return customer_by_identifier(kind, value)
    key, pk = _id_cache_key(kind, value), customer.merged_into_id or customer.pk
    transaction.on_commit(lambda: cache.set(key, pk, ID_CACHE_SECONDS))
    return customer


def customer_create(*, user=None, email="", phone="", source="oscar", **profile):
    customer = Customer.objects.create(user=user, email=email, phone=phone, **profile)
    if email:
        holder = add_identifier(customer, CustomerIdentifier.EMAIL, email, source)
        if holder.pk != customer.pk:
            # Lost a race for this email: fold the new record into the holder.
            customer_merge(survivor=holder, merged=customer, reason=CustomerMerge.REGISTRATION)
            return holder
    if phone:
        add_identifier(customer, CustomerIdentifier.PHONE, phone, source)
    return customer


def customer_for_user(user):
    """The customer of an Oscar user, created (or claimed by email) on first sight."""
    found = Customer.objects.filter(user=user).first()
    if found is not None:
        return canonical(found)
    email = normalize_email(user.email) if user.email else ""
    by_email = customer_by_identifier(CustomerIdentifier.EMAIL, email) if email else None
    if by_email is not None and by_email.user_id is None:
        # A guest who bought with this email before: the account claims that history.
        by_email.user = user
        _fill_profile(by_email, first_name=user.first_name, last_name=user.last_name)
        by_email.save()
        return by_email
    try:
        with transaction.atomic():
            customer = Customer.objects.create(user=user, first_name=user.first_name, last_name=user.last_name)
    except IntegrityError:  # another request created it first
        return canonical(Customer.objects.get(user=user))
    if email:
        if by_email is not None:
            # The email belongs to another account's customer: same person, two accounts.
            customer_merge(survivor=by_email, merged=customer, reason=CustomerMerge.REGISTRATION)
            return by_email
        customer.email = email
        customer.save(update_fields=["email", "updated_at"])
        add_identifier(customer, CustomerIdentifier.EMAIL, email)
    return customer


def customer_for_email(email, *, source="oscar", create=True):
    email = normalize_email(email)
    found = customer_by_identifier(CustomerIdentifier.EMAIL, email)
    if found is None and create:
        found = customer_create(email=email, source=source)
    return found


def customer_identify(*, source, email=None, phone=None, external_id=None, user=None, **profile):
    """Find the customer by any of the identifiers given, creating one if none matches.

    Identifiers that point at different customers prove they are one person: they are merged
    (reason ``api``). Missing identifiers and empty profile fields are filled in."""
    email = normalize_email(email) if email else ""
    phone = normalize_phone(phone) if phone else ""
    keys = []
    if external_id:
        keys.append((CustomerIdentifier.EXTERNAL, f"{source}:{external_id}"))
    if email:
        keys.append((CustomerIdentifier.EMAIL, email))
    if phone:
        keys.append((CustomerIdentifier.PHONE, phone))
    if not keys and user is None:
        raise InvalidEventError({"customer": _("Give at least one of email, phone or external_id.")})

    found = []
    if user is not None:
        found.append(customer_for_user(user))
    for kind, value in keys:
        customer = customer_by_identifier(kind, value)
        if customer is not None and all(c.pk != customer.pk for c in found):
            found.append(customer)
    if not found:
        customer = customer_create(email=email, phone=phone, source=source, **profile)
        found.append(customer)
    survivor = found[0]
    for other in found[1:]:
        customer_merge(survivor=survivor, merged=other, reason=CustomerMerge.API)
        survivor.refresh_from_db()
    for kind, value in keys:
        add_identifier(survivor, kind, value, source)
    if _fill_profile(survivor, email=email, phone=phone, **profile):
        survivor.save()
    return survivor


def _fill_profile(customer, **values):
    """Set empty profile fields from ``values``; return {field: old value} of those set."""
    changed = {}
    for field, value in values.items():
        if value and not getattr(customer, field):
            changed[field] = getattr(customer, field)
            setattr(customer, field, value)
    return changed


# --- merging --------------------------------------------------------------------------------


@transaction.atomic
def customer_merge(*, survivor, merged, reason, actor=None, now=None):
    """Merge ``merged`` into ``survivor``: one audited, reversible operation.

    Events move to the survivor (each keeps ``recorded_for``); customers already merged into
    ``merged`` now point at the survivor; empty profile fields of the survivor are filled
    from the merged one. Identifiers stay where they are and resolve through
    ``merged_into``. Nothing is deleted."""
    survivor = canonical(survivor)
    merged = Customer.objects.select_for_update().get(pk=merged.pk)
    if merged.merged_into_id is not None:
        raise MergeError(_("Customer %(id)s is already merged into another customer.") % {"id": merged.pk})
    if survivor.pk == merged.pk:
        raise MergeError(_("A customer cannot be merged into itself."))
    if survivor.user_id and merged.user_id:
        logger.info("merging customers %s and %s, who both have accounts", survivor.pk, merged.pk)

    flattened = list(Customer.objects.filter(merged_into=merged).values_list("pk", flat=True))
    Customer.objects.filter(pk__in=flattened).update(merged_into=survivor)
    moved = Event.objects.filter(customer=merged).update(customer=survivor)
    copied = _fill_profile(survivor, **{f: getattr(merged, f) for f in PROFILE_FIELDS})
    if copied:
        survivor.save()
    merged.merged_into = survivor
    merged.save(update_fields=["merged_into", "updated_at"])
    forget_cached_ids(merged, *Customer.objects.filter(pk__in=flattened))
    merge = CustomerMerge.objects.create(
        survivor=survivor,
        merged=merged,
        reason=reason,
        actor=actor,
        flattened=flattened,
        copied_fields=copied,
        events_moved=moved,
        created_at=now or timezone.now(),
    )
    transaction.on_commit(lambda: customer_merged.send(sender=CustomerMerge, merge=merge))
    return merge


@transaction.atomic
def customer_merge_revert(merge, *, actor=None, now=None):
    """Undo a merge: the merged customer and the customers it had absorbed get their own
    events back, and the survivor's fields that the merge filled are emptied again."""
    merge = CustomerMerge.objects.select_for_update().get(pk=merge.pk)
    if merge.reverted_at is not None:
        raise MergeError(_("This merge was already reverted."))
    merged, survivor = merge.merged, merge.survivor
    if merged.merged_into_id != survivor.pk:
        raise MergeError(_("Customer %(id)s has been merged again since; revert that merge first.") % {"id": merged.pk})
    restored = list(
        Customer.objects.filter(pk__in=merge.flattened, merged_into=survivor).values_list("pk", flat=True)
    )
    Customer.objects.filter(pk__in=restored).update(merged_into=merged)
    Event.objects.filter(recorded_for__in=[merged.pk, *restored]).update(customer=merged)
    merged.merged_into = None
    merged.save(update_fields=["merged_into", "updated_at"])
    forget_cached_ids(merged, *Customer.objects.filter(pk__in=restored))
    for field, old in merge.copied_fields.items():
        setattr(survivor, field, old)  # the merge only fills empty fields: old is "" or None
    if merge.copied_fields:
        survivor.save()
    merge.reverted_at = now or timezone.now()
    merge.reverted_by = actor
    merge.save(update_fields=["reverted_at", "reverted_by"])
    return merge


def customer_link(*, customer_id, user_id=None, email=None, reason):
    """The visitor ``customer_id`` turned out to be the account ``user_id``, or the person
    who gave ``email``: merge the visitor into that customer. An email nobody holds yet
    simply becomes the visitor's. Two different accounts are never merged automatically.
    Returns the customer the visitor's events now belong to."""
    from django.contrib.auth import get_user_model

    visitor = Customer.objects.filter(pk=customer_id).first()
    if visitor is None:
        return None
    visitor = canonical(visitor)
    if user_id is not None:
        user = get_user_model()._default_manager.filter(pk=user_id).first()
        if user is None:
            return visitor
        target = customer_for_user(user)
    else:
        email = normalize_email(email)
        target = customer_by_identifier(CustomerIdentifier.EMAIL, email)
        if target is None:
            holder = add_identifier(visitor, CustomerIdentifier.EMAIL, email)
            if holder.pk == visitor.pk:
                if _fill_profile(visitor, email=email):
                    visitor.save(update_fields=["email", "updated_at"])
                return visitor
            target = holder
    if target.pk == visitor.pk:
        return visitor
    if visitor.user_id and not target.user_id:
        visitor, target = target, visitor  # the customer with the account survives
    elif visitor.user_id and target.user_id:
        logger.warning(
            "not merging customers %s and %s (%s): both have their own account", visitor.pk, target.pk, reason
        )
        return visitor
    customer_merge(survivor=target, merged=visitor, reason=reason)
    return target

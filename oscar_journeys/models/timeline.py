"""The single customer view: customers, their identifiers, the append-only event
timeline, and the audit of merges."""

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class CustomerQuerySet(models.QuerySet):
    def canonical(self):
        """Customers that are not merged into another one."""
        return self.filter(merged_into__isnull=True)


class Customer(models.Model):
    """One person. Linked to the Oscar user when there is one.

    When two customers turn out to be one person, the ``merged`` one points at the
    survivor through ``merged_into`` (always one hop: merges flatten chains) and its events
    move to the survivor; ``CustomerMerge`` keeps what is needed to undo it.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="journeys_customer",
        verbose_name=_("user"),
    )
    email = models.CharField(_("email"), max_length=254, blank=True, db_index=True)
    phone = models.CharField(_("phone (E.164)"), max_length=32, blank=True)
    first_name = models.CharField(_("first name"), max_length=150, blank=True)
    last_name = models.CharField(_("last name"), max_length=150, blank=True)
    date_of_birth = models.DateField(_("date of birth"), null=True, blank=True)
    time_zone = models.CharField(
        _("time zone"), max_length=64, blank=True, help_text=_("IANA name, e.g. Europe/Madrid. Empty: the shop's.")
    )
    language = models.CharField(
        _("language"), max_length=16, blank=True, help_text=_("Language code for pages we show them. Empty: the shop's.")
    )
    merged_into = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="absorbed",
        verbose_name=_("merged into"),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    objects = CustomerQuerySet.as_manager()

    class Meta:
        app_label = "oscar_journeys"
        verbose_name = _("customer")
        verbose_name_plural = _("customers")

    def __str__(self):
        name = f"{self.first_name} {self.last_name}".strip()
        return name or self.email or self.phone or _("Anonymous visitor #%(id)s") % {"id": self.pk}

    @property
    def is_anonymous(self):
        return not (self.user_id or self.email or self.phone)

    @property
    def canonical_id(self):
        return self.merged_into_id or self.pk


class CustomerIdentifier(models.Model):
    """A normalized way to recognise a customer: one row per (kind, value)."""

    EMAIL, PHONE, BASKET, EXTERNAL, PUSH = "email", "phone", "basket", "external", "push"
    KIND_CHOICES = [
        (EMAIL, _("Email")),
        (PHONE, _("Phone")),
        (BASKET, _("Oscar basket")),
        (EXTERNAL, _("Id in another system")),
        (PUSH, _("Push device token")),
    ]

    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="identifiers", verbose_name=_("customer")
    )
    kind = models.CharField(_("kind"), max_length=16, choices=KIND_CHOICES)
    value = models.CharField(_("value"), max_length=255)
    source = models.CharField(_("source"), max_length=64, default="oscar")
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        app_label = "oscar_journeys"
        verbose_name = _("customer identifier")
        verbose_name_plural = _("customer identifiers")
        constraints = [
            models.UniqueConstraint(fields=["kind", "value"], name="oscar_journeys_identifier_unique")
        ]

    def __str__(self):
        return f"{self.kind}:{self.value}"


class EventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        # Events are append-only; only a merge (or its reversal) re-points them.
        if set(kwargs) - {"customer", "customer_id"}:
            raise TypeError("Events are append-only: only their customer can change (by a merge).")
        return super().update(**kwargs)


class Event(models.Model):
    """Something that happened to or was done by a customer. Append-only.

    ``customer`` is the canonical customer (moved by merges); ``recorded_for`` is the
    customer record the event first arrived for and never changes, so a merge can be undone.
    ``(source, idempotency_key)`` is unique: the same event arriving twice is stored once.
    """

    id = models.BigAutoField(primary_key=True)
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="events", verbose_name=_("customer")
    )
    recorded_for = models.ForeignKey(
        Customer,
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
        verbose_name=_("recorded for"),
    )
    type = models.CharField(_("type"), max_length=64)
    occurred_at = models.DateTimeField(_("occurred at"))
    recorded_at = models.DateTimeField(_("recorded at"), default=timezone.now)
    source = models.CharField(_("source"), max_length=64, default="oscar")
    idempotency_key = models.CharField(_("idempotency key"), max_length=255)
    value = models.DecimalField(_("value"), max_digits=14, decimal_places=2, null=True, blank=True)
    currency = models.CharField(_("currency"), max_length=3, blank=True)
    category = models.CharField(_("product category"), max_length=255, blank=True)
    product = models.ForeignKey(
        "catalogue.Product",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
        verbose_name=_("product"),
    )
    payload = models.JSONField(_("payload"), default=dict, blank=True, encoder=DjangoJSONEncoder)

    objects = EventQuerySet.as_manager()

    class Meta:
        app_label = "oscar_journeys"
        verbose_name = _("event")
        verbose_name_plural = _("events")
        ordering = ["-occurred_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["source", "idempotency_key"], name="oscar_journeys_event_unique_key")
        ]
        indexes = [
            models.Index(fields=["customer", "occurred_at"], name="oscar_journeys_event_cust_at"),
            models.Index(fields=["type", "occurred_at"], name="oscar_journeys_event_type_at"),
        ]

    def __str__(self):
        return f"{self.type} @ {self.occurred_at:%Y-%m-%d %H:%M}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise TypeError("Events are append-only and cannot be changed once recorded.")
        super().save(*args, **kwargs)


class CustomerMerge(models.Model):
    """Audit of one merge; holds what is needed to revert it."""

    LOGIN, REGISTRATION, GUEST_CHECKOUT, GUEST_ORDER, ADMIN, API = (
        "login",
        "registration",
        "guest_checkout",
        "guest_order",
        "admin",
        "api",
    )
    REASON_CHOICES = [
        (LOGIN, _("Logged in")),
        (REGISTRATION, _("Registered")),
        (GUEST_CHECKOUT, _("Gave their email at checkout")),
        (GUEST_ORDER, _("Guest order with the account's email")),
        (ADMIN, _("Merged by staff")),
        (API, _("Merged through the API")),
    ]

    survivor = models.ForeignKey(
        Customer, on_delete=models.PROTECT, related_name="merges_in", verbose_name=_("survivor")
    )
    merged = models.ForeignKey(
        Customer, on_delete=models.PROTECT, related_name="merges_out", verbose_name=_("merged customer")
    )
    reason = models.CharField(_("reason"), max_length=32, choices=REASON_CHOICES)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("done by"),
    )
    # Customers that pointed at `merged` and were re-pointed at `survivor` (flattening).
    flattened = models.JSONField(_("re-pointed customers"), default=list, blank=True)
    # Survivor fields that were empty and got the merged customer's value: {field: old value}.
    copied_fields = models.JSONField(_("copied fields"), default=dict, blank=True, encoder=DjangoJSONEncoder)
    events_moved = models.PositiveIntegerField(_("events moved"), default=0)
    created_at = models.DateTimeField(_("merged at"), default=timezone.now)
    reverted_at = models.DateTimeField(_("reverted at"), null=True, blank=True)
    reverted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("reverted by"),
    )

    class Meta:
        app_label = "oscar_journeys"
        verbose_name = _("customer merge")
        verbose_name_plural = _("customer merges")
        ordering = ["-created_at"]

    def __str__(self):
        return _("%(merged)s into %(survivor)s") % {"merged": self.merged_id, "survivor": self.survivor_id}

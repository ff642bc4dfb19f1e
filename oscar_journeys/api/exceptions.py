"""API errors: domain errors mapped to DRF exceptions, and the handler our views use.

The views name this handler themselves, so the project's ``EXCEPTION_HANDLER`` setting does
not change their answers."""

from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions, status
from rest_framework.views import exception_handler as drf_exception_handler

from ..exceptions import IdempotencyConflictError, InvalidEventError


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = _("The request conflicts with data already stored.")
    default_code = "conflict"


def exception_handler(exc, context):
    """DRF's handler, after mapping InvalidEventError to a 400 with its field errors and
    IdempotencyConflictError to a 409."""
    if isinstance(exc, InvalidEventError):
        exc = exceptions.ValidationError(exc.errors)
    elif isinstance(exc, IdempotencyConflictError):
        exc = Conflict(str(exc))
    return drf_exception_handler(exc, context)

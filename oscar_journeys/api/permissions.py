"""Permissions of the journeys API."""

from rest_framework.permissions import BasePermission

from ..models import EventSource


class IsEventSource(BasePermission):
    """Only a request authenticated as an active EventSource (see ``authentication``)."""

    def has_permission(self, request, view):
        return isinstance(request.auth, EventSource) and request.auth.is_active

"""Views of the journeys API.

Each view names its authentication, permission, throttle, parser, renderer, negotiation,
versioning and exception handler classes, so it behaves the same whatever the project's
``REST_FRAMEWORK`` defaults (only the throttle rate comes from there)."""

from django.utils import timezone
from rest_framework import status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from .. import app_settings
from ..services.ingest import CONFLICT, CREATED, DUPLICATE, REJECTED, batch_counts, events_ingest
from .authentication import EventSourceAuthentication
from .exceptions import exception_handler
from .permissions import IsEventSource
from .serializers import BatchResultSerializer, EventBatchSerializer


class LiveScopedRateThrottle(ScopedRateThrottle):
    """ScopedRateThrottle that reads ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` on every
    request. (DRF copies the rates onto the class at import, so a changed setting, e.g.
    ``override_settings`` in a test, would not be seen.) Without a rate for the scope there,
    ``OSCAR_JOURNEYS_API_THROTTLE_RATE`` applies (None: not throttled)."""

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope) or app_settings.API_THROTTLE_RATE


def batch_status(counts):
    """200 when every item was accepted (created or duplicate), 207 when some were and some
    not, 409 when none was and every failure is a conflict, 400 otherwise."""
    failed = counts[REJECTED] + counts[CONFLICT]
    if not failed:
        return status.HTTP_200_OK
    if counts[CREATED] + counts[DUPLICATE]:
        return status.HTTP_207_MULTI_STATUS
    if not counts[REJECTED]:
        return status.HTTP_409_CONFLICT
    return status.HTTP_400_BAD_REQUEST


class EventBatchView(APIView):
    """``POST {"events": [ ... ]}``: record a batch of events from the calling source.
    See docs/api.md."""

    authentication_classes = [EventSourceAuthentication]
    permission_classes = [IsEventSource]
    throttle_classes = [LiveScopedRateThrottle]
    throttle_scope = "journeys-events"
    parser_classes = [JSONParser]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = DefaultContentNegotiation
    versioning_class = None

    def get_exception_handler(self):
        return exception_handler

    def post(self, request):
        batch = EventBatchSerializer(data=request.data)
        batch.is_valid(raise_exception=True)
        results = events_ingest(source=request.auth, items=batch.validated_data["events"], now=timezone.now())
        counts = batch_counts(results)
        body = BatchResultSerializer({"results": results, "counts": counts}).data
        return Response(body, status=batch_status(counts))

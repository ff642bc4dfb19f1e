"""URLs of the journeys API, included by ``oscar_journeys.urls`` under ``api/``."""

from django.urls import path

from . import views

urlpatterns = [
    path("events/", views.EventBatchView.as_view(), name="api-events"),
]

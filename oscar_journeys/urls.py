"""Include in the project's urls: ``path("journeys/", include("oscar_journeys.urls"))``."""

from django.urls import include, path

app_name = "oscar_journeys"

urlpatterns = [
    path("api/", include("oscar_journeys.api.urls")),
]

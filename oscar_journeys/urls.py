"""Include in the project's urls: ``path("journeys/", include("oscar_journeys.urls"))``.

The public pages (unsubscribe, preferences, tracking, basket restore, inbound webhooks)
must stay outside ``i18n_patterns``: links in sent messages cannot change."""

from django.urls import include, path

from . import views

app_name = "oscar_journeys"

urlpatterns = [
    path("api/", include("oscar_journeys.api.urls")),
    path("u/<str:token>/", views.unsubscribe, name="unsubscribe"),
    path("p/<str:token>/", views.preferences, name="preferences"),
    path("o/<str:token>.gif", views.message_open, name="message-open"),
    path("c/<str:token>/", views.message_click, name="message-click"),
    path("r/<str:token>/", views.basket_restore, name="basket-restore"),
    path("hooks/<int:channel_id>/<str:inbound_token>/", views.channel_inbound, name="channel-inbound"),
]

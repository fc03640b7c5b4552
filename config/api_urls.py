"""REST API v1: each app contributes its own routes."""

from django.urls import include, path

urlpatterns = [
    path("", include("accounts.api_urls")),
    path("", include("subscriptions.api_urls")),
    path("imaging/", include("imaging.api_urls")),
    path("sentiment/", include("sentiment.api_urls")),
]

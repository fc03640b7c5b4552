from django.urls import path

from subscriptions import api

app_name = "subscriptions_api"
urlpatterns = [
    path("usage/", api.UsageView.as_view(), name="usage"),
]

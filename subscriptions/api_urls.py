from django.urls import path

app_name = "subscriptions_api"
urlpatterns: list = []

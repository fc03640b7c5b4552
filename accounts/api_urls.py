from django.urls import path

from accounts import api

app_name = "accounts_api"
urlpatterns = [
    path("me/", api.MeView.as_view(), name="me"),
    path("members/", api.MemberListView.as_view(), name="members"),
    path("audit-events/", api.AuditEventListView.as_view(), name="audit-events"),
]

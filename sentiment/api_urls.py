from django.urls import path

from sentiment import api

app_name = "sentiment_api"
urlpatterns = [
    path("documents/", api.DocumentListCreateView.as_view(), name="document-list"),
    path("documents/<int:pk>/", api.DocumentDetailView.as_view(), name="document-detail"),
    path("batches/<int:pk>/", api.BatchDetailView.as_view(), name="batch-detail"),
    path("entities/<str:key>/series/", api.EntitySeriesView.as_view(), name="entity-series"),
    path("alerts/", api.AlertListView.as_view(), name="alert-list"),
    path("alerts/<int:pk>/", api.AlertDetailView.as_view(), name="alert-detail"),
    path("alert-rules/", api.AlertRuleListView.as_view(), name="alert-rule-list"),
]

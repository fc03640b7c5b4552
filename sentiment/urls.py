from django.urls import path

from sentiment import alert_views, dashboard_views, views

app_name = "sentiment"
urlpatterns = [
    path("", views.IndexView.as_view(), name="index"),
    path("model/", views.ModelCardView.as_view(), name="model-card"),
    path("sources/", views.SourcesView.as_view(), name="sources"),
    path("sources/paste/", views.PasteView.as_view(), name="paste"),
    path("sources/csv/", views.CsvUploadView.as_view(), name="csv-upload"),
    path("sources/csv/<int:pk>/", views.CsvImportView.as_view(), name="csv-import"),
    path("feeds/", views.FeedCreateView.as_view(), name="feed-create"),
    path("feeds/<int:pk>/poll/", views.FeedActionView.as_view(action="poll"), name="feed-poll"),
    path("feeds/<int:pk>/toggle/", views.FeedActionView.as_view(action="toggle"), name="feed-toggle"),
    path("feeds/<int:pk>/delete/", views.FeedActionView.as_view(action="delete"), name="feed-delete"),
    path("batches/active/", views.ActiveBatchesView.as_view(), name="active-batches"),
    path("batches/<int:pk>/status/", views.BatchStatusView.as_view(), name="batch-status"),
    path("documents/", views.DocumentListView.as_view(), name="documents"),
    path("documents/<int:pk>/", views.DocumentDetailView.as_view(), name="document-detail"),
    path("watchlists/", dashboard_views.WatchlistListView.as_view(), name="watchlists"),
    path("watchlists/<int:pk>/", dashboard_views.WatchlistDetailView.as_view(), name="watchlist-detail"),
    path("watchlists/<int:pk>/delete/", dashboard_views.WatchlistDeleteView.as_view(), name="watchlist-delete"),
    path("watchlists/<int:pk>/digest/", dashboard_views.DigestToggleView.as_view(), name="digest-toggle"),
    path("watchlists/<int:pk>/dashboard/", dashboard_views.DashboardView.as_view(), name="dashboard"),
    path("watchlists/<int:pk>/dashboard/data/", dashboard_views.DashboardDataView.as_view(), name="dashboard-data"),
    path("watchlists/<int:pk>/dashboard/point/", dashboard_views.DashboardPointView.as_view(), name="dashboard-point"),
    path("entities/<int:pk>/delete/", dashboard_views.EntityDeleteView.as_view(), name="entity-delete"),
    path("alerts/", alert_views.AlertsView.as_view(), name="alerts"),
    path("alerts/<int:pk>/", alert_views.AlertDetailView.as_view(), name="alert-detail"),
    path("alerts/rules/<int:pk>/", alert_views.RuleDetailView.as_view(), name="rule-detail"),
    path("alerts/rules/<int:pk>/test/", alert_views.RuleActionView.as_view(action="test"), name="rule-test"),
    path("alerts/rules/<int:pk>/toggle/", alert_views.RuleActionView.as_view(action="toggle"), name="rule-toggle"),
    path("alerts/rules/<int:pk>/delete/", alert_views.RuleActionView.as_view(action="delete"), name="rule-delete"),
]

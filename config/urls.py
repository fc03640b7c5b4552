from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from accounts import health
from accounts import views as account_views

urlpatterns = [
    path("", account_views.home, name="home"),
    path("healthz", health.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("org/", include("accounts.urls")),
    path("imaging/", include("imaging.urls")),
    path("sentiment/", include("sentiment.urls")),
    path("billing/", include("subscriptions.urls")),
    path("api/v1/", include("config.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]

# Uploaded scans, overlays and reports are never served from MEDIA_URL, not even under DEBUG: every file goes
# through a view that checks the organisation and writes the audit trail.
handler404 = "accounts.api_errors.page_not_found"
handler500 = "accounts.api_errors.server_error"

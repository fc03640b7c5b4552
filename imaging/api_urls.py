from django.urls import path

from imaging import api

app_name = "imaging_api"
urlpatterns = [
    path("studies/", api.StudyListCreateView.as_view(), name="study-list"),
    path("studies/<int:pk>/", api.StudyDetailView.as_view(), name="study-detail"),
    path("studies/<int:pk>/report/", api.StudyReportView.as_view(), name="study-report"),
    path("jobs/<int:pk>/", api.JobDetailView.as_view(), name="job-detail"),
    path("jobs/<int:pk>/cancel/", api.JobCancelView.as_view(), name="job-cancel"),
    path("jobs/<int:pk>/retry/", api.JobRetryView.as_view(), name="job-retry"),
    path("images/<int:pk>/feedback/", api.ImageFeedbackView.as_view(), name="image-feedback"),
    path("images/<int:pk>/preview/", api.ImagePreviewView.as_view(), name="image-preview"),
    path("images/<int:pk>/original/", api.ImageOriginalView.as_view(), name="image-original"),
    path("predictions/<int:pk>/explain/", api.PredictionExplainView.as_view(), name="prediction-explain"),
    path("explanations/<int:pk>/overlay/", api.ExplanationOverlayView.as_view(), name="explanation-overlay"),
]

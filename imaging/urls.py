from django.urls import path

from imaging import views

app_name = "imaging"
urlpatterns = [
    path("", views.StudyListView.as_view(), name="index"),
    path("upload/", views.UploadView.as_view(), name="upload"),
    path("uploads/new/", views.UploadSessionCreateView.as_view(), name="upload-session-create"),
    path("uploads/files/", views.UploadFileView.as_view(), name="upload-file"),
    path("uploads/finish/", views.UploadFinishView.as_view(), name="upload-finish"),
    path("studies/<int:pk>/", views.StudyDetailView.as_view(), name="study-detail"),
    path("studies/<int:pk>/results/", views.StudyResultsPartialView.as_view(), name="study-results"),
    path("studies/<int:pk>/analyze/", views.StudyAnalyzeView.as_view(), name="study-analyze"),
    path("studies/<int:pk>/report.pdf", views.StudyReportView.as_view(), name="study-report"),
    path("jobs/<int:pk>/cancel/", views.JobCancelView.as_view(), name="job-cancel"),
    path("jobs/<int:pk>/retry/", views.JobRetryView.as_view(), name="job-retry"),
    path("images/<int:pk>/preview.png", views.ImagePreviewView.as_view(), name="image-preview"),
    path("images/<int:pk>/values.u16", views.ImageValuesView.as_view(), name="image-values"),
    path("images/<int:pk>/original/", views.ImageOriginalView.as_view(), name="image-original"),
    path("images/<int:pk>/feedback/", views.ImageFeedbackView.as_view(), name="image-feedback"),
    path("predictions/<int:pk>/explain/", views.ExplanationRequestView.as_view(), name="prediction-explain"),
    path("explanations/<int:pk>/overlay.png", views.ExplanationOverlayView.as_view(), name="explanation-overlay"),
]

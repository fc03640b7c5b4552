from django.urls import path

from imaging import api

app_name = "imaging_api"
urlpatterns = [
    path("studies/", api.StudyListCreateView.as_view(), name="study-list"),
    path("studies/<int:pk>/", api.StudyDetailView.as_view(), name="study-detail"),
    path("jobs/<int:pk>/", api.JobDetailView.as_view(), name="job-detail"),
    path("jobs/<int:pk>/cancel/", api.JobCancelView.as_view(), name="job-cancel"),
    path("jobs/<int:pk>/retry/", api.JobRetryView.as_view(), name="job-retry"),
    path("images/<int:pk>/feedback/", api.ImageFeedbackView.as_view(), name="image-feedback"),
]

"""Imaging tables: the model registry, upload sessions, studies/series/images, analysis jobs and their results."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models import TenantModel


class ModelTask(models.TextChoices):
    IMAGE = "image", "Single image"
    SERIES = "series", "Series"


class ImagingModel(models.Model):
    """A registered, checksummed model version on disk. Shared by all organisations (demo and operator models)."""

    name = models.CharField(max_length=100)
    version = models.CharField(max_length=32)
    task = models.CharField(max_length=8, choices=ModelTask.choices)
    path = models.CharField(max_length=500, help_text="Model directory (absolute, or relative to the models dir)")
    sha256 = models.CharField(max_length=64)
    manifest = models.JSONField(default=dict)
    is_active = models.BooleanField(default=False)
    is_demo = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="imaging_model_name_version"),
            # One active model per task: the worker must never have to guess.
            models.UniqueConstraint(fields=["task"], condition=Q(is_active=True), name="imaging_one_active_per_task"),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.version}"

    @property
    def labels(self) -> list[str]:
        return list(self.manifest.get("labels", []))

    @property
    def metrics(self) -> dict:
        return dict(self.manifest.get("metrics", {}))

    @property
    def intended_use(self) -> str:
        return self.manifest.get("intended_use", "")


class DeidentificationKey(TenantModel):
    """Per-organisation secret that seeds UID remapping and pseudonyms; never shown to users."""

    salt = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization"], name="imaging_one_deid_key_per_org")]

    def __str__(self) -> str:
        return f"De-identification key of organisation {self.organization_id}"


class UploadSession(TenantModel):
    """Files dropped together: each file is posted on its own (per-file progress and retry), then `finish` starts
    the analyses. Plain images of one session form one study."""

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    files_accepted = models.PositiveIntegerField(default=0)
    files_rejected = models.PositiveIntegerField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Upload {self.pk}"


class Study(TenantModel):
    """A DICOM study (grouped by de-identified StudyInstanceUID) or the plain images uploaded together."""

    title = models.CharField(max_length=200)
    study_instance_uid = models.CharField(max_length=64, blank=True, db_index=True)
    modality = models.CharField(max_length=16, blank=True)
    description = models.CharField(max_length=200, blank=True)
    upload_session = models.ForeignKey(UploadSession, null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="studies")
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    image_count = models.PositiveIntegerField(default=0)
    latest_job = models.ForeignKey("AnalysisJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "studies"
        indexes = [models.Index(fields=["organization", "-created_at"], name="imaging_study_org_time")]

    def __str__(self) -> str:
        return self.title

    @property
    def is_dicom(self) -> bool:
        return bool(self.study_instance_uid)


class Series(TenantModel):
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="series")
    series_instance_uid = models.CharField(max_length=64, blank=True)
    modality = models.CharField(max_length=16, blank=True)
    description = models.CharField(max_length=200, blank=True)
    series_number = models.IntegerField(null=True, blank=True)
    image_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["series_number", "id"]
        verbose_name_plural = "series"

    def __str__(self) -> str:
        return self.description or f"Series {self.series_number or self.pk}"


class ImageKind(models.TextChoices):
    PNG = "png", "PNG"
    JPEG = "jpeg", "JPEG"
    DICOM = "dicom", "DICOM"


class Image(TenantModel):
    """One image (one frame of a DICOM file). `file` holds the de-identified original (DICOM) or a metadata-free
    PNG re-encoding (PNG/JPEG); `preview` the windowed 8-bit PNG; `values` raw uint16 samples for window/level."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="images")
    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="images")
    upload_session = models.ForeignKey(UploadSession, null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="images")
    original_name = models.CharField(max_length=255)
    kind = models.CharField(max_length=8, choices=ImageKind.choices)
    file = models.CharField(max_length=300)
    preview = models.CharField(max_length=300)
    values = models.CharField(max_length=300, blank=True)
    sha256 = models.CharField(max_length=64, db_index=True)
    size_bytes = models.PositiveBigIntegerField(default=0)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    channels = models.PositiveSmallIntegerField(default=1)
    bits_stored = models.PositiveSmallIntegerField(default=8)
    photometric = models.CharField(max_length=16, blank=True)
    window_center = models.FloatField(null=True, blank=True)
    window_width = models.FloatField(null=True, blank=True)
    value_min = models.FloatField(default=0.0)
    value_max = models.FloatField(default=255.0)
    sop_instance_uid = models.CharField(max_length=64, blank=True)
    frame_index = models.PositiveIntegerField(default=0)
    instance_number = models.IntegerField(null=True, blank=True)
    slice_position = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["series_id", "slice_position", "instance_number", "frame_index", "id"]
        constraints = [
            models.UniqueConstraint(fields=["series", "sop_instance_uid", "frame_index"],
                                    condition=~Q(sop_instance_uid=""), name="imaging_image_unique_instance"),
        ]

    def __str__(self) -> str:
        return self.original_name


class JobStatus(models.TextChoices):
    WAITING = "waiting", "Waiting for a free slot"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


# Not finished yet: the result page keeps polling and the job can be cancelled.
ACTIVE_JOB_STATUSES = (JobStatus.WAITING, JobStatus.QUEUED, JobStatus.RUNNING)
# Holding one of the plan's `max_concurrent_jobs` slots: on the broker or on a worker. WAITING jobs hold none.
SLOT_JOB_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)


class AnalysisJob(TenantModel):
    """One attempt at analysing a set of images of a study. Retry creates a new row (`retry_of`).

    WAITING: created while the organisation's plan had no free slot; nothing is on the broker until
    `analysis_jobs_start_waiting` moves it to QUEUED (oldest first) when a slot frees up."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="jobs")
    images = models.ManyToManyField(Image, related_name="jobs")
    model = models.ForeignKey(ImagingModel, on_delete=models.PROTECT, related_name="+")
    series_model = models.ForeignKey(ImagingModel, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True)
    attempt = models.PositiveSmallIntegerField(default=1)
    retry_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries")
    images_total = models.PositiveIntegerField(default=0)
    images_done = models.PositiveIntegerField(default=0)
    error_message = models.TextField(blank=True)
    reservation_id = models.BigIntegerField(null=True, blank=True, help_text="subscriptions UsageEntry reserved")
    quota_settled = models.CharField(max_length=10, blank=True, help_text="committed / released once settled")
    explain = models.BooleanField(default=True)
    # Sends to the broker (queued from waiting, and every re-send by the stuck-job sweep), not failures.
    enqueue_count = models.PositiveSmallIntegerField(default=0)
    interrupt_count = models.PositiveSmallIntegerField(
        default=0, help_text="times found RUNNING without progress (a killed worker) and run again")
    created_at = models.DateTimeField(default=timezone.now)
    queued_at = models.DateTimeField(default=timezone.now)  # last put on the broker
    started_at = models.DateTimeField(null=True, blank=True)
    progress_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "progress_at"], name="imaging_job_status_progress")]

    def __str__(self) -> str:
        return f"Analysis {self.pk} of study {self.study_id}"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_JOB_STATUSES

    @property
    def percent(self) -> int:
        return int(100 * self.images_done / self.images_total) if self.images_total else 0


class Prediction(TenantModel):
    """Class probabilities of one image from one job, with the model's identity."""

    job = models.ForeignKey(AnalysisJob, on_delete=models.CASCADE, related_name="predictions")
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="predictions")
    probabilities = models.JSONField(default=dict)
    predicted_label = models.CharField(max_length=64)
    confidence = models.FloatField()
    model_name = models.CharField(max_length=100)
    model_version = models.CharField(max_length=32)
    model_sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["image_id"]
        constraints = [models.UniqueConstraint(fields=["job", "image"], name="imaging_one_prediction_per_image")]

    def __str__(self) -> str:
        return f"{self.predicted_label} ({self.confidence:.0%})"

    @property
    def sorted_probabilities(self) -> list[tuple[str, float]]:
        return sorted(self.probabilities.items(), key=lambda item: -item[1])


class SeriesPrediction(TenantModel):
    """Study-level prediction of the series model for one series, with per-slice attention."""

    job = models.ForeignKey(AnalysisJob, on_delete=models.CASCADE, related_name="series_predictions")
    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="predictions")
    probabilities = models.JSONField(default=dict)
    predicted_label = models.CharField(max_length=64)
    confidence = models.FloatField()
    slice_attention = models.JSONField(default=list, help_text="[[image_id, weight], ...] in slice order")
    model_name = models.CharField(max_length=100)
    model_version = models.CharField(max_length=32)
    model_sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "series"], name="imaging_one_series_prediction")]

    def __str__(self) -> str:
        return f"{self.predicted_label} ({self.confidence:.0%})"


class ExplanationSource(models.TextChoices):
    IMAGE = "image", "Image model Grad-CAM"
    SERIES = "series", "Series model Grad-CAM"


class Explanation(TenantModel):
    """A Grad-CAM heatmap of one image for one class, stored as a coloured RGBA overlay PNG."""

    job = models.ForeignKey(AnalysisJob, on_delete=models.CASCADE, related_name="explanations")
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="explanations")
    source = models.CharField(max_length=8, choices=ExplanationSource.choices, default=ExplanationSource.IMAGE)
    label = models.CharField(max_length=64)
    overlay = models.CharField(max_length=300, blank=True)
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.SUCCEEDED)
    peak_x = models.FloatField(null=True, blank=True, help_text="heatmap maximum, fraction of the width")
    peak_y = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["image_id", "label"]
        constraints = [models.UniqueConstraint(fields=["job", "image", "source", "label"],
                                               name="imaging_one_explanation_per_label")]

    def __str__(self) -> str:
        return f"Grad-CAM {self.label} of image {self.image_id}"


class Feedback(TenantModel):
    """A clinician's verdict on a prediction, kept per image for later training."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="feedback")
    prediction = models.ForeignKey(Prediction, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    is_correct = models.BooleanField()
    correct_label = models.CharField(max_length=64, blank=True)
    comment = models.TextField(blank=True, max_length=2000)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-updated_at"]
        constraints = [models.UniqueConstraint(fields=["image", "author"], name="imaging_one_feedback_per_author")]

    def __str__(self) -> str:
        return "correct" if self.is_correct else f"should be {self.correct_label}"

"""Sentiment tables: model registry, sources, documents and scores, entities and watchlists, hourly rollups,
alert rules and alerts, digest subscriptions."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models import TenantModel


class SentimentModel(models.Model):
    """A registered, checksummed classifier on disk. Shared by all organisations (demo and operator models)."""

    name = models.CharField(max_length=64)
    version = models.CharField(max_length=64)
    path = models.CharField(max_length=500, help_text="Model directory (absolute, or relative to the models dir)")
    sha256 = models.CharField(max_length=64)
    manifest = models.JSONField(default=dict)
    is_active = models.BooleanField(default=False)
    is_demo = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="sentiment_model_name_version"),
            models.UniqueConstraint(fields=["is_active"], condition=Q(is_active=True), name="sentiment_one_active"),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.version}"

    @property
    def metrics(self) -> dict:
        return dict(self.manifest.get("metrics", {}))

    @property
    def intended_use(self) -> str:
        return self.manifest.get("intended_use", "")


class SourceKind(models.TextChoices):
    PASTE = "paste", "Pasted text"
    CSV = "csv", "CSV upload"
    API = "api", "API"
    FEED = "feed", "RSS/Atom feed"


class Source(TenantModel):
    """Where documents come from. Paste, CSV and API have one source each per organisation; feeds one per URL."""

    kind = models.CharField(max_length=8, choices=SourceKind.choices)
    name = models.CharField(max_length=200)
    url = models.URLField(max_length=1000, blank=True)
    poll_interval_minutes = models.PositiveIntegerField(default=30)
    is_active = models.BooleanField(default=True)
    explain = models.BooleanField(default=True, help_text="Compute word attributions for this source's documents")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    # Feed health.
    last_fetch_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_items_added = models.PositiveIntegerField(default=0)
    items_total = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    next_fetch_at = models.DateTimeField(null=True, blank=True, db_index=True)
    etag = models.CharField(max_length=255, blank=True)
    last_modified = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["kind", "name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "url"], condition=Q(kind="feed"),
                                    name="sentiment_feed_url_per_org"),
            models.UniqueConstraint(fields=["organization", "kind"], condition=~Q(kind="feed"),
                                    name="sentiment_one_builtin_source_per_kind"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def health(self) -> str:
        if self.kind != SourceKind.FEED:
            return "ok"
        if not self.is_active:
            return "paused"
        if self.consecutive_failures:
            return "failing"
        return "ok" if self.last_success_at else "waiting"


class BatchStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Scoring"
    SUCCEEDED = "succeeded", "Scored"
    FAILED = "failed", "Failed"


ACTIVE_BATCH_STATUSES = (BatchStatus.QUEUED, BatchStatus.RUNNING)


class ScoringBatch(TenantModel):
    """One scoring job: the documents of one ingest. Quota is reserved at ingest and committed once at the end."""

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="batches")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    status = models.CharField(max_length=10, choices=BatchStatus.choices, default=BatchStatus.QUEUED, db_index=True)
    explain = models.BooleanField(default=True)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    reservation_id = models.BigIntegerField(null=True, blank=True, help_text="subscriptions UsageEntry reserved")
    quota_settled = models.CharField(max_length=10, blank=True, help_text="committed / released once settled")
    model = models.ForeignKey(SentimentModel, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    error_message = models.TextField(blank=True)
    # Sends to the broker (at ingest, and every re-send by the stuck-batch sweep), not failures.
    enqueue_count = models.PositiveSmallIntegerField(default=0)
    interrupt_count = models.PositiveSmallIntegerField(
        default=0, help_text="times found RUNNING past the stuck limit (a killed worker) and run again")
    created_at = models.DateTimeField(default=timezone.now)
    queued_at = models.DateTimeField(default=timezone.now, help_text="last put on the broker")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "status"], name="sent_batch_org_status")]

    def __str__(self) -> str:
        return f"Scoring batch {self.pk} ({self.total} texts)"

    @property
    def percent(self) -> int:
        return int(100 * self.done / self.total) if self.total else 100

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_BATCH_STATUSES


class DocumentStatus(models.TextChoices):
    QUEUED = "queued", "Waiting to be scored"
    SCORED = "scored", "Scored"
    FAILED = "failed", "Failed"


class Label(models.TextChoices):
    NEGATIVE = "negative", "Negative"
    NEUTRAL = "neutral", "Neutral"
    POSITIVE = "positive", "Positive"


class Document(TenantModel):
    """One normalised text. Unique per organisation by content hash (case-insensitive)."""

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="documents")
    batch = models.ForeignKey(ScoringBatch, null=True, blank=True, on_delete=models.SET_NULL, related_name="documents")
    text = models.TextField()
    title = models.CharField(max_length=500, blank=True)
    url = models.URLField(max_length=1000, blank=True)
    publisher = models.CharField(max_length=200, blank=True, help_text="Source named in the CSV row or feed")
    external_id = models.CharField(max_length=500, blank=True)
    language = models.CharField(max_length=16, blank=True)
    content_hash = models.CharField(max_length=64)
    published_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=8, choices=DocumentStatus.choices, default=DocumentStatus.QUEUED)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-published_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "content_hash"], name="sentiment_doc_dedupe"),
        ]
        indexes = [
            models.Index(fields=["organization", "-published_at"], name="sent_doc_org_published"),
            models.Index(fields=["batch", "status"], name="sent_doc_batch_status"),
        ]

    def __str__(self) -> str:
        return (self.title or self.text)[:80]

    @property
    def headline(self) -> str:
        return self.title or (self.text if len(self.text) <= 160 else self.text[:157] + "…")


class Score(TenantModel):
    """The model's verdict on one document, with word attributions for the predicted label."""

    document = models.OneToOneField(Document, on_delete=models.CASCADE, related_name="score")
    label = models.CharField(max_length=8, choices=Label.choices)
    p_negative = models.FloatField()
    p_neutral = models.FloatField()
    p_positive = models.FloatField()
    sentiment_index = models.FloatField(help_text="p(positive) - p(negative), from -1 to 1")
    attributions = models.JSONField(null=True, blank=True, help_text="[[start, end, score], ...] for the label")
    model_name = models.CharField(max_length=64)
    model_version = models.CharField(max_length=64)
    model_sha256 = models.CharField(max_length=64)
    scored_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.label} ({self.confidence:.0%})"

    @property
    def probabilities(self) -> dict[str, float]:
        return {"negative": self.p_negative, "neutral": self.p_neutral, "positive": self.p_positive}

    @property
    def confidence(self) -> float:
        return max(self.p_negative, self.p_neutral, self.p_positive)


class MentionKind(models.TextChoices):
    CASHTAG = "cashtag", "Cashtag"
    TICKER = "ticker", "Ticker"
    ALIAS = "alias", "Company name"
    NER = "ner", "Named entity"


class EntityMention(TenantModel):
    """An entity found in a scored document, with its character span. Score and time are copied here so the
    drill-down and the "latest strongly negative" list read one indexed table."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="mentions")
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=100)
    kind = models.CharField(max_length=8, choices=MentionKind.choices)
    start = models.PositiveIntegerField()
    end = models.PositiveIntegerField()
    text = models.CharField(max_length=200)
    published_at = models.DateTimeField()
    label = models.CharField(max_length=8, choices=Label.choices)
    sentiment_index = models.FloatField()
    strongly_negative = models.BooleanField(default=False)

    class Meta:
        ordering = ["start"]
        indexes = [
            models.Index(fields=["organization", "key", "published_at"], name="sent_mention_key_time"),
            models.Index(fields=["organization", "strongly_negative", "published_at"], name="sent_mention_neg_time"),
        ]

    def __str__(self) -> str:
        return f"{self.key} in document {self.document_id}"


class EntityHour(TenantModel):
    """Rollup per (entity, source, hour) kept up to date by the scoring path; every chart reads this table."""

    key = models.CharField(max_length=100)
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)
    index_sum = models.FloatField(default=0.0)
    negatives = models.PositiveIntegerField(default=0)
    neutrals = models.PositiveIntegerField(default=0)
    positives = models.PositiveIntegerField(default=0)
    strong_negatives = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "key", "source", "hour"], name="sentiment_rollup_key"),
        ]
        # Covering: the dashboard's aggregates over a year of hours read the index only, not the table.
        indexes = [models.Index(fields=["organization", "key", "hour"], name="sent_rollup_key_hour",
                                include=["source", "count", "index_sum", "negatives", "positives",
                                         "strong_negatives"])]

    def __str__(self) -> str:
        return f"{self.key} {self.hour:%Y-%m-%d %H}:00 ({self.count})"


class Watchlist(TenantModel):
    name = models.CharField(max_length=120)
    description = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="sentiment_watchlist_name")]

    def __str__(self) -> str:
        return self.name


class WatchlistEntity(TenantModel):
    """A company followed in a watchlist: its key (usually the ticker), display name and the names news uses."""

    watchlist = models.ForeignKey(Watchlist, on_delete=models.CASCADE, related_name="entities")
    key = models.CharField(max_length=100)
    name = models.CharField(max_length=200, blank=True)
    aliases = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["key"]
        constraints = [models.UniqueConstraint(fields=["watchlist", "key"], name="sentiment_watchlist_entity")]

    def __str__(self) -> str:
        return self.key

    @property
    def display(self) -> str:
        return f"{self.key} · {self.name}" if self.name else self.key


class DigestSubscription(TenantModel):
    """A user's opt-in to the daily digest e-mail of one watchlist."""

    watchlist = models.ForeignKey(Watchlist, on_delete=models.CASCADE, related_name="digest_subscriptions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    last_sent_on = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["watchlist", "user"], name="sentiment_digest_once")]


class RuleKind(models.TextChoices):
    NEGATIVE_SHARE = "negative_share", "Negative share above a threshold"
    SPIKE = "spike", "Spike of negative news against the trailing baseline (z-score)"


class AlertRule(TenantModel):
    name = models.CharField(max_length=120)
    watchlist = models.ForeignKey(Watchlist, on_delete=models.CASCADE, related_name="alert_rules")
    entity_key = models.CharField(max_length=100, blank=True, help_text="Empty: every entity of the watchlist")
    kind = models.CharField(max_length=16, choices=RuleKind.choices, default=RuleKind.NEGATIVE_SHARE)
    window_hours = models.PositiveIntegerField(default=24)
    threshold = models.FloatField(default=0.5, help_text="Negative share (0-1) or z-score")
    min_volume = models.PositiveIntegerField(default=5)
    baseline_days = models.PositiveIntegerField(default=14)
    cooldown_minutes = models.PositiveIntegerField(default=360)
    email_recipients = models.TextField(blank=True, help_text="Comma-separated e-mail addresses")
    webhook_url = models.URLField(max_length=1000, blank=True)
    webhook_secret = models.CharField(max_length=64)
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def recipients(self) -> list[str]:
        return [e.strip() for e in self.email_recipients.replace(";", ",").split(",") if e.strip()]

    @property
    def describe(self) -> str:
        target = self.entity_key or f"any entity in {self.watchlist.name}"
        if self.kind == RuleKind.SPIKE:
            return (f"{target}: negative documents in {self.window_hours} h at z ≥ {self.threshold:g} against the "
                    f"last {self.baseline_days} days, at least {self.min_volume} documents")
        return (f"{target}: negative share over {self.window_hours} h above {self.threshold:.0%}, "
                f"at least {self.min_volume} documents")


class Alert(TenantModel):
    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    entity_key = models.CharField(max_length=100)
    triggered_at = models.DateTimeField(default=timezone.now)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    value = models.FloatField(help_text="Negative share or z-score that crossed the threshold")
    volume = models.PositiveIntegerField()
    negatives = models.PositiveIntegerField()
    message = models.CharField(max_length=500)
    documents = models.ManyToManyField(Document, related_name="alerts", blank=True)

    class Meta:
        ordering = ["-triggered_at", "-id"]
        indexes = [models.Index(fields=["rule", "entity_key", "-triggered_at"], name="sent_alert_rule_entity")]

    def __str__(self) -> str:
        return self.message


class DeliveryChannel(models.TextChoices):
    EMAIL = "email", "E-mail"
    WEBHOOK = "webhook", "Webhook"


class AlertDelivery(TenantModel):
    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="deliveries")
    alert = models.ForeignKey(Alert, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.CharField(max_length=8, choices=DeliveryChannel.choices)
    is_test = models.BooleanField(default=False)
    ok = models.BooleanField(default=False)
    detail = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]


class CsvImportStatus(models.TextChoices):
    MAPPING = "mapping", "Waiting for column mapping"
    IMPORTED = "imported", "Imported"
    FAILED = "failed", "Failed"


class CsvImport(TenantModel):
    """An uploaded CSV between upload and import: detected encoding, columns, a preview, then per-row results."""

    original_name = models.CharField(max_length=255)
    file = models.CharField(max_length=300)
    size_bytes = models.PositiveIntegerField(default=0)
    encoding = models.CharField(max_length=32)
    delimiter = models.CharField(max_length=1, default=",")
    headers = models.JSONField(default=list)
    preview = models.JSONField(default=list)
    mapping = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=CsvImportStatus.choices, default=CsvImportStatus.MAPPING)
    rows_total = models.PositiveIntegerField(default=0)
    rows_imported = models.PositiveIntegerField(default=0)
    rows_duplicate = models.PositiveIntegerField(default=0)
    row_errors = models.JSONField(default=list, blank=True)
    batch = models.ForeignKey(ScoringBatch, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.original_name

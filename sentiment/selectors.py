"""Every sentiment read, scoped by the caller's organisation; another organisation's id is a 404.

The dashboard reads the hourly rollups (EntityHour) and the denormalised mentions, never raw documents."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import Count, F, Prefetch, QuerySet, Sum
from django.db.models.functions import Trunc
from django.http import Http404

from accounts.models import Organization
from sentiment.models import (
    ACTIVE_BATCH_STATUSES,
    Alert,
    AlertDelivery,
    AlertRule,
    CsvImport,
    DigestSubscription,
    Document,
    EntityHour,
    EntityMention,
    ScoringBatch,
    SentimentModel,
    Source,
    SourceKind,
    Watchlist,
    WatchlistEntity,
)

BUCKETS = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}


def _get(qs: QuerySet, pk, what: str):
    obj = qs.filter(pk=pk).first() if str(pk).isdigit() else None
    if obj is None:
        raise Http404(f"No such {what}.")
    return obj


def active_model() -> SentimentModel | None:
    from sentiment.services import model_resolve

    try:
        return model_resolve()
    except Exception:  # a misconfigured SENTIMENT_MODEL must not break the pages that show the model card
        return SentimentModel.objects.filter(is_active=True).first()


# --- sources, batches, imports --------------------------------------------------------------------------------------

def source_list(*, organization: Organization) -> QuerySet[Source]:
    return (Source.objects.filter(organization=organization).annotate(n_documents=Count("documents"))
            .order_by("kind", "name"))


def feed_list(*, organization: Organization) -> QuerySet[Source]:
    return Source.objects.filter(organization=organization, kind=SourceKind.FEED).order_by("name")


def feed_get(*, organization: Organization, pk) -> Source:
    return _get(Source.objects.filter(organization=organization, kind=SourceKind.FEED), pk, "feed")


def batch_get(*, organization: Organization, pk) -> ScoringBatch:
    return _get(ScoringBatch.objects.filter(organization=organization).select_related("source"), pk, "scoring batch")


def batch_active_list(*, organization: Organization) -> QuerySet[ScoringBatch]:
    return (ScoringBatch.objects.filter(organization=organization, status__in=ACTIVE_BATCH_STATUSES)
            .select_related("source").order_by("created_at"))


def batch_recent_list(*, organization: Organization, limit: int = 8) -> list[ScoringBatch]:
    return list(ScoringBatch.objects.filter(organization=organization).select_related("source")[:limit])


def csv_import_get(*, organization: Organization, pk) -> CsvImport:
    return _get(CsvImport.objects.filter(organization=organization).select_related("batch"), pk, "CSV import")


# --- documents ------------------------------------------------------------------------------------------------------

def document_list(*, organization: Organization, source_id=None, label: str = "", entity: str = "", q: str = "",
                  batch_id=None) -> QuerySet[Document]:
    qs = Document.objects.filter(organization=organization).select_related("score", "source")
    if source_id and str(source_id).isdigit():
        qs = qs.filter(source_id=source_id)
    if batch_id and str(batch_id).isdigit():
        qs = qs.filter(batch_id=batch_id)
    if label:
        qs = qs.filter(score__label=label)
    if entity:
        qs = qs.filter(pk__in=EntityMention.objects.filter(organization=organization, key=entity.upper())
                       .values("document_id"))
    if q:
        qs = qs.filter(text__icontains=q)
    return qs


def document_get(*, organization: Organization, pk) -> Document:
    mentions = EntityMention.objects.filter(organization=organization).order_by("start")
    return _get(Document.objects.filter(organization=organization).select_related("score", "source", "batch")
                .prefetch_related(Prefetch("mentions", queryset=mentions)), pk, "document")


@dataclass(frozen=True, slots=True)
class Segment:
    """A run of document text with its attribution (-1..1, 0 for none)."""

    text: str
    score: float = 0.0

    @property
    def tone(self) -> str:
        if abs(self.score) < 0.15:
            return ""
        level = 3 if abs(self.score) >= 0.66 else 2 if abs(self.score) >= 0.33 else 1
        return f"{'pro' if self.score > 0 else 'con'}{level}"


@dataclass(slots=True)
class SegmentGroup:
    """Consecutive segments: one entity mention (entity set) or plain text between mentions."""

    parts: list[Segment]
    entity: str = ""
    entity_kind: str = ""
    mention_start: int | None = None


def document_segments(*, document: Document) -> list[SegmentGroup]:
    """Split the text at every attribution and entity boundary so the template can highlight both; runs inside
    one entity mention are grouped so the entity is drawn as one box around its (shaded) words."""
    text = document.text
    score = getattr(document, "score", None)
    spans = [(int(s), int(e), float(v)) for s, e, v in (score.attributions or [])] if score else []
    mentions = [(m.start, m.end, m.key, m.kind) for m in document.mentions.all()]
    cuts = {0, len(text)}
    for s, e, *_ in spans + mentions:
        if 0 <= s < e <= len(text):
            cuts.update((s, e))
    points = sorted(cuts)
    groups: list[SegmentGroup] = []
    for a, b in zip(points, points[1:], strict=False):
        value = next((v for s, e, v in spans if s <= a and b <= e), 0.0)
        mention = next(((s, k, kind) for s, e, k, kind in mentions if s <= a and b <= e), None)
        segment = Segment(text=text[a:b], score=value)
        owner = mention[0] if mention else None
        if groups and owner is not None and groups[-1].mention_start == owner:
            groups[-1].parts.append(segment)
        else:
            groups.append(SegmentGroup(parts=[segment], entity=mention[1] if mention else "",
                                       entity_kind=mention[2] if mention else "", mention_start=owner))
    return groups


def top_words(*, document: Document, limit: int = 5) -> list[tuple[str, float]]:
    score = getattr(document, "score", None)
    if not score or not score.attributions:
        return []
    words = [(document.text[s:e], v) for s, e, v in score.attributions if v > 0]
    return sorted(words, key=lambda w: -w[1])[:limit]


# --- watchlists -----------------------------------------------------------------------------------------------------

def watchlist_list(*, organization: Organization) -> QuerySet[Watchlist]:
    return (Watchlist.objects.filter(organization=organization).annotate(n_entities=Count("entities"))
            .order_by("name"))


def watchlist_get(*, organization: Organization, pk) -> Watchlist:
    return _get(Watchlist.objects.filter(organization=organization), pk, "watchlist")


def watchlist_entities(*, organization: Organization, watchlist: Watchlist) -> QuerySet[WatchlistEntity]:
    return WatchlistEntity.objects.filter(organization=organization, watchlist=watchlist)


def watchlist_entity_get(*, organization: Organization, pk) -> WatchlistEntity:
    return _get(WatchlistEntity.objects.filter(organization=organization).select_related("watchlist"), pk, "entity")


def watchlist_keys(*, organization: Organization, watchlist: Watchlist) -> list[str]:
    return list(watchlist_entities(organization=organization, watchlist=watchlist).values_list("key", flat=True))


def digest_subscribed(*, watchlist: Watchlist, user) -> bool:
    return DigestSubscription.objects.filter(watchlist=watchlist, user=user).exists()


# --- dashboard (rollups) --------------------------------------------------------------------------------------------

def _rollups(*, organization: Organization, keys: list[str], start: datetime, end: datetime,
             source_ids: list[int] | None) -> QuerySet[EntityHour]:
    qs = EntityHour.objects.filter(organization=organization, key__in=keys, hour__gte=start, hour__lt=end)
    return qs.filter(source_id__in=source_ids) if source_ids else qs


def entity_series(*, organization: Organization, keys: list[str], start: datetime, end: datetime,
                  bucket: str = "day", source_ids: list[int] | None = None) -> dict[str, list[dict]]:
    """Per entity: one point per bucket with documents (volume), mean sentiment index and negative share."""
    if bucket not in BUCKETS:
        raise ValueError(f"bucket must be one of {', '.join(BUCKETS)}.")
    qs = _rollups(organization=organization, keys=keys, start=start, end=end, source_ids=source_ids)
    qs = qs.annotate(t=F("hour")) if bucket == "hour" else qs.annotate(t=Trunc("hour", bucket, tzinfo=UTC))
    rows = (qs.values("key", "t").annotate(n=Sum("count"), s=Sum("index_sum"), neg=Sum("negatives"),
                                            pos=Sum("positives")).order_by("key", "t"))
    series: dict[str, list[dict]] = {key: [] for key in keys}
    for row in rows:
        n = row["n"] or 0
        series[row["key"]].append({
            "t": int(row["t"].timestamp() * 1000), "count": n, "index": round(row["s"] / n, 4) if n else None,
            "negative_share": round(row["neg"] / n, 4) if n else None, "negatives": row["neg"], "positives": row["pos"],
        })
    return series


def window_totals(*, organization: Organization, keys: list[str], start: datetime, end: datetime,
                  source_ids: list[int] | None = None) -> dict[str, dict]:
    """Per entity totals over one window: count, negatives, positives and summed index."""
    rows = (_rollups(organization=organization, keys=keys, start=start, end=end, source_ids=source_ids)
            .values("key").annotate(n=Sum("count"), s=Sum("index_sum"), neg=Sum("negatives"), pos=Sum("positives"),
                                    strong=Sum("strong_negatives")))
    return {r["key"]: {"count": r["n"], "index_sum": r["s"], "negatives": r["neg"], "positives": r["pos"],
                       "strong_negatives": r["strong"]} for r in rows}


def top_movers(*, organization: Organization, keys: list[str], end: datetime, period: timedelta,
               source_ids: list[int] | None = None, min_volume: int = 3, limit: int = 5) -> list[dict]:
    """Entities whose mean sentiment index moved most between the last `period` and the one before it."""
    current = window_totals(organization=organization, keys=keys, start=end - period, end=end, source_ids=source_ids)
    previous = window_totals(organization=organization, keys=keys, start=end - 2 * period, end=end - period,
                             source_ids=source_ids)
    movers = []
    for key, now in current.items():
        before = previous.get(key)
        if now["count"] < min_volume or not before or before["count"] < min_volume:
            continue
        a, b = now["index_sum"] / now["count"], before["index_sum"] / before["count"]
        movers.append({"key": key, "index": round(a, 3), "previous": round(b, 3), "change": round(a - b, 3),
                       "volume": now["count"], "previous_volume": before["count"]})
    return sorted(movers, key=lambda m: -abs(m["change"]))[:limit]


def latest_strongly_negative(*, organization: Organization, keys: list[str], start: datetime, end: datetime,
                             source_ids: list[int] | None = None, limit: int = 8) -> list[Document]:
    mentions = EntityMention.objects.filter(organization=organization, strongly_negative=True, key__in=keys,
                                            published_at__gte=start, published_at__lt=end)
    if source_ids:
        mentions = mentions.filter(source_id__in=source_ids)
    ids = []
    for doc_id in mentions.order_by("-published_at", "-document_id").values_list("document_id", flat=True)[:limit * 4]:
        if doc_id not in ids:
            ids.append(doc_id)
        if len(ids) == limit:
            break
    docs = {d.pk: d for d in Document.objects.filter(organization=organization, pk__in=ids).select_related("score")}
    return [docs[i] for i in ids if i in docs]


def point_documents(*, organization: Organization, key: str, start: datetime, end: datetime,
                    source_ids: list[int] | None = None) -> QuerySet[Document]:
    """The documents behind one chart point: those naming `key` published in [start, end)."""
    mentions = EntityMention.objects.filter(organization=organization, key=key, published_at__gte=start,
                                            published_at__lt=end)
    if source_ids:
        mentions = mentions.filter(source_id__in=source_ids)
    # Mentions carry their document's published_at, so the same window on documents is exact; it lets PostgreSQL
    # walk the (organization, -published_at) index inside the window instead of the whole year for "newest 10".
    return (Document.objects.filter(organization=organization, published_at__gte=start, published_at__lt=end,
                                    pk__in=mentions.values("document_id"))
            .select_related("score", "source").prefetch_related(
                Prefetch("mentions", queryset=EntityMention.objects.filter(organization=organization)))
            .order_by("-published_at", "-id"))


def dashboard_range(*, days: int | None = None, start: str = "", end: str = "") -> tuple[datetime, datetime]:
    """[start, end) from ISO dates (inclusive end date) or the last `days` days, aligned to whole hours."""
    now = datetime.now(UTC)
    try:
        end_dt = (datetime.fromisoformat(end).replace(tzinfo=UTC) + timedelta(days=1)) if end else None
        start_dt = datetime.fromisoformat(start).replace(tzinfo=UTC) if start else None
    except ValueError:
        end_dt = start_dt = None
    end_dt = end_dt or (now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1))
    start_dt = start_dt or end_dt - timedelta(days=days or 30)
    if start_dt >= end_dt:
        start_dt = end_dt - timedelta(days=1)
    return start_dt, end_dt


# --- alerts ---------------------------------------------------------------------------------------------------------

def alert_rule_list(*, organization: Organization, watchlist: Watchlist | None = None) -> QuerySet[AlertRule]:
    qs = AlertRule.objects.filter(organization=organization).select_related("watchlist").annotate(
        n_alerts=Count("alerts")).order_by("name", "id")
    return qs.filter(watchlist=watchlist) if watchlist else qs


def alert_rule_get(*, organization: Organization, pk) -> AlertRule:
    return _get(AlertRule.objects.filter(organization=organization).select_related("watchlist"), pk, "alert rule")


def alert_list(*, organization: Organization, rule: AlertRule | None = None) -> QuerySet[Alert]:
    qs = Alert.objects.filter(organization=organization).select_related("rule", "rule__watchlist").annotate(
        n_documents=Count("documents")).order_by("-triggered_at", "-id")
    return qs.filter(rule=rule) if rule else qs


def alert_get(*, organization: Organization, pk) -> Alert:
    return _get(Alert.objects.filter(organization=organization).select_related("rule", "rule__watchlist"), pk,
                "alert")


def alert_documents(*, organization: Organization, alert: Alert) -> QuerySet[Document]:
    return alert.documents.filter(organization=organization).select_related("score").order_by("-published_at")


def delivery_list(*, organization: Organization, rule: AlertRule, limit: int = 10) -> list[AlertDelivery]:
    return list(AlertDelivery.objects.filter(organization=organization, rule=rule)[:limit])


def strong_negative_threshold() -> float:
    return settings.SENTIMENT_STRONG_NEGATIVE

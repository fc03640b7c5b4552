"""Sentiment writes: the model registry, sources, ingest (normalise, dedupe, quota, enqueue), the scoring batch
state machine and score write-back, watchlists and digest opt-ins.

Batch states: QUEUED -> RUNNING -> SUCCEEDED | FAILED. Every transition locks the batch row; the worker proceeds
only from QUEUED, and write-back only touches documents still QUEUED, so a redelivered message is harmless and
rollups count every document once. Quota is reserved per queued text at ingest and settled once when the batch
ends. A failed document is queued again (in a new batch) when its text is imported again.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django_scopes import scope, scopes_disabled

from accounts.exceptions import NotFound, ServiceError
from accounts.models import Organization, User
from accounts.services import audit_record
from sentiment import rollups
from sentiment.entities import extract_entities
from sentiment.models import (
    BatchStatus,
    DigestSubscription,
    Document,
    DocumentStatus,
    EntityMention,
    Score,
    ScoringBatch,
    SentimentModel,
    Source,
    SourceKind,
    Watchlist,
    WatchlistEntity,
)
from sentiment.normalisation import EmptyText, normalise_text

logger = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"
BUILTIN_SOURCE_NAMES = {SourceKind.PASTE: "Pasted text", SourceKind.CSV: "CSV uploads", SourceKind.API: "API"}


class NoModelInstalled(ServiceError):
    code = "no_model_installed"
    status = 503


class BatchTooLarge(ServiceError):
    code = "batch_too_large"
    status = 413


# --- registry -----------------------------------------------------------------------------------------------------

def model_path(model: SentimentModel) -> Path:
    path = Path(model.path)
    return path if path.is_absolute() else Path(settings.SENTIMENT_MODELS_DIR) / path


@transaction.atomic
def model_register(*, model_dir: str | Path, activate: bool = True) -> SentimentModel:
    """Register (or refresh) the model saved in `model_dir` from its manifest.json; optionally make it active.
    Reads the manifest as JSON, so the web process never needs torch."""
    directory = Path(model_dir).resolve()
    try:
        manifest = json.loads((directory / MANIFEST_FILE).read_text(encoding="utf-8"))
        name, version, sha = manifest["name"], manifest["version"], manifest["weights_sha256"]
    except (OSError, ValueError, KeyError) as exc:
        raise ServiceError(f"{directory}: not a saved sentiment model (manifest.json missing or invalid). Train one "
                           "with `./manage.py train_sentiment`.") from exc
    if list(manifest.get("labels", [])) != ["negative", "neutral", "positive"]:
        raise ServiceError(f"{directory}: sentiment models must predict negative/neutral/positive.")
    root = Path(settings.SENTIMENT_MODELS_DIR).resolve()
    stored_path = str(directory.relative_to(root)) if directory.is_relative_to(root) else str(directory)
    model, _ = SentimentModel.objects.update_or_create(
        name=name, version=version,
        defaults={"path": stored_path, "sha256": sha, "manifest": manifest, "is_demo": bool(manifest.get("demo"))})
    if activate:
        model_activate(model=model)
    return model


@transaction.atomic
def model_activate(*, model: SentimentModel) -> SentimentModel:
    SentimentModel.objects.filter(is_active=True).exclude(pk=model.pk).update(is_active=False)
    SentimentModel.objects.filter(pk=model.pk).update(is_active=True)
    model.is_active = True
    return model


def model_resolve(*, spec: str = "") -> SentimentModel | None:
    """The model named by `spec` ("name" or "name:version"), else SENTIMENT_MODEL, else the active row."""
    spec = spec or settings.SENTIMENT_MODEL
    if not spec:
        return SentimentModel.objects.filter(is_active=True).first()
    name, _, version = spec.partition(":")
    qs = SentimentModel.objects.filter(name=name)
    if version:
        qs = qs.filter(version=version)
    model = qs.order_by("-is_active", "-created_at").first()
    if model is None:
        raise NotFound(f"No sentiment model '{spec}' is registered; see `./manage.py train_sentiment`.")
    return model


# --- sources --------------------------------------------------------------------------------------------------------

def source_builtin(*, organization: Organization, kind: str) -> Source:
    """The organisation's paste / CSV / API source, created on first use."""
    with scope(organization=organization):
        try:
            with transaction.atomic():
                source, _ = Source.objects.get_or_create(organization=organization, kind=kind,
                                                         defaults={"name": BUILTIN_SOURCE_NAMES[kind]})
        except IntegrityError:
            source = Source.objects.get(organization=organization, kind=kind)
    return source


def feed_create(*, organization: Organization, url: str, name: str, poll_interval_minutes: int,
                created_by: User | None) -> Source:
    url = url.strip()
    if not url.lower().startswith(("http://", "https://")):
        raise ServiceError("Feed addresses start with http:// or https://; paste the RSS or Atom link itself.")
    interval = max(int(poll_interval_minutes), settings.SENTIMENT_FEED_MIN_INTERVAL_MINUTES)
    with scope(organization=organization):
        if Source.objects.filter(organization=organization, kind=SourceKind.FEED, url=url).exists():
            raise ServiceError("This feed is already added; it is listed under Feeds.")
        source = Source.objects.create(organization=organization, kind=SourceKind.FEED, url=url,
                                       name=name.strip() or url[:200], poll_interval_minutes=interval,
                                       created_by=created_by, next_fetch_at=timezone.now())
    audit_record(organization=organization, actor=created_by, verb="sentiment.feed.create", target=source)
    transaction.on_commit(lambda: _enqueue_feed(source.pk))
    return source


def _enqueue_feed(source_id: int) -> None:
    from sentiment.tasks import feed_poll

    feed_poll.apply_async(kwargs={"source_id": source_id}, queue="default")


def feed_poll_request(*, source: Source) -> None:
    """Fetch the feed now (after commit), outside its schedule."""
    transaction.on_commit(lambda: _enqueue_feed(source.pk))


def feed_update(*, source: Source, is_active: bool | None = None, poll_interval_minutes: int | None = None) -> Source:
    if is_active is not None:
        source.is_active = is_active
        if is_active:
            source.consecutive_failures = 0
            source.next_fetch_at = timezone.now()
    if poll_interval_minutes is not None:
        source.poll_interval_minutes = max(int(poll_interval_minutes), settings.SENTIMENT_FEED_MIN_INTERVAL_MINUTES)
    source.save()
    return source


def feed_delete(*, source: Source, actor: User | None) -> None:
    if source.kind != SourceKind.FEED:
        raise ServiceError("Only feeds can be removed; pasted, uploaded and API documents stay with their source.")
    audit_record(organization=source.organization, actor=actor, verb="sentiment.feed.delete",
                 details={"url": source.url})
    source.delete()


# --- ingest ---------------------------------------------------------------------------------------------------------

@dataclass
class IngestItem:
    text: str
    title: str = ""
    url: str = ""
    publisher: str = ""
    published_at: datetime | None = None
    language: str | None = None
    external_id: str = ""
    # Set by a caller whose own validation already refused the item: it is reported as rejected with this reason
    # but keeps its place, so every index and "same text as item N" counts the caller's items.
    problem: str = ""


@dataclass
class ItemResult:
    index: int
    status: str  # created | duplicate | rejected
    document_id: int | None = None
    message: str = ""
    requeued: bool = False  # created: an earlier document of this text had failed and is scored again


@dataclass
class IngestResult:
    batch: ScoringBatch | None
    results: list[ItemResult] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def created(self) -> int:
        return self.count("created")

    @property
    def duplicates(self) -> int:
        return self.count("duplicate")

    @property
    def rejected(self) -> int:
        return self.count("rejected")

    @property
    def requeued(self) -> int:
        """Of the created: texts whose earlier document had failed and is queued for scoring again."""
        return sum(1 for r in self.results if r.requeued)


def _prepare(item: IngestItem, *, received_at: datetime) -> tuple[dict | None, str]:
    if item.problem:
        return None, item.problem
    raw = item.text if isinstance(item.text, str) else ""
    if len(raw) > settings.SENTIMENT_MAX_TEXT_CHARS:
        return None, (f"the text has {len(raw):,} characters, more than the {settings.SENTIMENT_MAX_TEXT_CHARS:,} "
                      "allowed; split it into paragraphs or send the article's lead only.")
    try:
        norm = normalise_text(raw, language=item.language or None)
    except EmptyText as exc:
        return None, str(exc)
    except (TypeError, ValueError) as exc:
        return None, str(exc)
    title = " ".join((item.title or "").split())[:500]
    return {"text": norm.text, "content_hash": norm.content_hash, "language": norm.language, "title": title,
            "url": (item.url or "").strip()[:1000], "publisher": (item.publisher or "").strip()[:200],
            "external_id": (item.external_id or "")[:500],
            "published_at": item.published_at or received_at}, ""


def documents_ingest(*, organization: Organization, source: Source, items: list[IngestItem],
                     created_by: User | None = None, explain: bool | None = None,
                     max_items: int | None = None) -> IngestResult:
    """Normalise, dedupe (per organisation, by content hash), store and queue texts for scoring.

    Returns one result per item in order: created, duplicate (of an earlier document or item) or rejected with the
    reason. A text whose earlier document failed to score is not a duplicate: that document joins this batch and is
    scored again (created, with `requeued` set and the earlier document's id). Quota is reserved for every created
    text; QuotaExceeded rolls the whole ingest back with the numbers."""
    for attempt in range(3):
        try:
            return _ingest(organization=organization, source=source, items=items, created_by=created_by,
                           explain=explain, max_items=max_items)
        except IntegrityError:
            # A concurrent ingest stored one of these texts first; the next attempt sees it as a duplicate.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


@transaction.atomic
def _ingest(*, organization: Organization, source: Source, items: list[IngestItem], created_by: User | None,
            explain: bool | None, max_items: int | None) -> IngestResult:
    from subscriptions.services import usage_reserve

    if max_items is not None and len(items) > max_items:
        raise BatchTooLarge(f"{len(items):,} texts were sent; send at most {max_items:,} per request and split the "
                            "rest into further requests.", details={"max_items": max_items, "received": len(items)})
    results: list[ItemResult] = []
    prepared: dict[str, tuple[int, dict]] = {}
    received_at = timezone.now()  # one instant per batch, so undated texts of one batch share their rollup hour
    for index, item in enumerate(items):
        row, problem = _prepare(item, received_at=received_at)
        if row is None:
            results.append(ItemResult(index=index, status="rejected", message=problem))
        elif row["content_hash"] in prepared:
            results.append(ItemResult(index=index, status="duplicate",
                                      message=f"same text as item {prepared[row['content_hash']][0]} of this batch."))
        else:
            prepared[row["content_hash"]] = (index, row)
            results.append(ItemResult(index=index, status="created"))
    with scope(organization=organization):
        # Failed documents are locked, so two imports of the same text cannot both queue it again.
        failed = dict(Document.objects.select_for_update().filter(
            organization=organization, content_hash__in=list(prepared), status=DocumentStatus.FAILED)
            .values_list("content_hash", "pk"))
        existing = dict(Document.objects.filter(organization=organization, content_hash__in=list(prepared))
                        .exclude(pk__in=list(failed.values())).values_list("content_hash", "pk"))
        for content_hash, pk in existing.items():
            index, _ = prepared.pop(content_hash)
            results[index] = ItemResult(index=index, status="duplicate", document_id=pk,
                                        message="this text was already imported; the existing document is kept.")
        requeue: list[int] = []
        for content_hash, pk in failed.items():
            index, _ = prepared.pop(content_hash)
            requeue.append(pk)
            results[index] = ItemResult(index=index, status="created", document_id=pk, requeued=True,
                                        message="this text was imported before but could not be scored; the earlier "
                                        "document is scored again.")
        if not prepared and not requeue:
            return IngestResult(batch=None, results=results)
        explain = source.explain if explain is None else explain
        batch = ScoringBatch.objects.create(organization=organization, source=source, created_by=created_by,
                                            total=len(prepared) + len(requeue), explain=explain, enqueue_count=1)
        docs = Document.objects.bulk_create([
            Document(organization=organization, source=source, batch=batch, **row) for _, row in prepared.values()])
        for (index, _), doc in zip(prepared.values(), docs, strict=True):
            results[index].document_id = doc.pk
        Document.objects.filter(pk__in=requeue).update(batch=batch, status=DocumentStatus.QUEUED)
        reservation = usage_reserve(organization=organization, meter="texts", quantity=len(docs) + len(requeue),
                                    job_ref=f"sentiment-batch-{batch.pk}")
        ScoringBatch.objects.filter(pk=batch.pk).update(reservation_id=reservation.pk)
        batch.reservation_id = reservation.pk
    transaction.on_commit(lambda: _enqueue_batch(batch.pk))
    return IngestResult(batch=batch, results=results)


def _enqueue_batch(batch_id: int) -> None:
    from sentiment.tasks import score_batch

    score_batch.apply_async(kwargs={"batch_id": batch_id}, queue="gpu")


def paste_split(*, raw: str, mode: str) -> list[IngestItem]:
    """The paste box: one text per non-empty line, or the whole block as one text."""
    if mode == "block":
        return [IngestItem(text=raw)] if raw.strip() else []
    return [IngestItem(text=line) for line in raw.splitlines() if line.strip()]


# --- scoring batches ------------------------------------------------------------------------------------------------

def _locked_batch(batch_id: int) -> ScoringBatch | None:
    with scopes_disabled():
        return ScoringBatch.objects.select_for_update().select_related("organization").filter(pk=batch_id).first()


@transaction.atomic
def batch_start(*, batch_id: int, model: SentimentModel) -> ScoringBatch | None:
    """Move a QUEUED batch to RUNNING; None when it is missing or already past QUEUED (a redelivery)."""
    batch = _locked_batch(batch_id)
    if batch is None or batch.status != BatchStatus.QUEUED:
        return None
    batch.status, batch.started_at, batch.model = BatchStatus.RUNNING, timezone.now(), model
    batch.save(update_fields=["status", "started_at", "model"])
    return batch


def _settle_quota(batch: ScoringBatch, scored: int) -> None:
    from subscriptions.services import usage_commit, usage_release

    if batch.reservation_id is None or batch.quota_settled:
        return
    if scored:
        usage_commit(reservation=batch.reservation_id, quantity=min(scored, batch.total))
        batch.quota_settled = "committed"
    else:
        usage_release(reservation=batch.reservation_id)
        batch.quota_settled = "released"


@transaction.atomic
def batch_succeed(*, batch_id: int) -> ScoringBatch | None:
    batch = _locked_batch(batch_id)
    if batch is None or batch.status != BatchStatus.RUNNING:
        return None
    with scope(organization=batch.organization):
        scored = Document.objects.filter(batch=batch, status=DocumentStatus.SCORED).count()
        _settle_quota(batch, scored)
        batch.status, batch.finished_at, batch.done = BatchStatus.SUCCEEDED, timezone.now(), scored
        batch.save(update_fields=["status", "finished_at", "done", "quota_settled"])
    return batch


@transaction.atomic
def batch_fail(*, batch_id: int, message: str, only_queued: bool = False) -> ScoringBatch | None:
    """Stop a batch: texts already scored stay scored (and are charged), the rest are marked failed.

    `only_queued` leaves a RUNNING batch alone: a task refusing to start (e.g. no model) may be a duplicate message
    of a batch another worker is scoring."""
    batch = _locked_batch(batch_id)
    allowed = (BatchStatus.QUEUED,) if only_queued else (BatchStatus.QUEUED, BatchStatus.RUNNING)
    if batch is None or batch.status not in allowed:
        return None
    with scope(organization=batch.organization):
        Document.objects.filter(batch=batch, status=DocumentStatus.QUEUED).update(status=DocumentStatus.FAILED)
        scored = Document.objects.filter(batch=batch, status=DocumentStatus.SCORED).count()
        _settle_quota(batch, scored)
        batch.status, batch.finished_at, batch.error_message = BatchStatus.FAILED, timezone.now(), message
        batch.done = scored
        batch.save(update_fields=["status", "finished_at", "error_message", "done", "quota_settled"])
    return batch


_MAX_INTERRUPTIONS = 3  # the third interruption of a batch fails it
_COUNT_MAX = 32767  # PositiveSmallIntegerField's upper bound on PostgreSQL


def batches_requeue_stuck() -> dict:
    """Beat: recover batches whose message or worker was lost. Returns {"requeued": [ids], "failed": [ids]}.

    - QUEUED longer than SENTIMENT_STUCK_BATCH_SECONDS: its message is sent again, in case it was lost. A batch that
      merely waits behind a backlog gets a duplicate, which the task ignores (only a QUEUED batch starts, under its
      row lock). This never counts as an interruption and never fails a batch, however long it waits. `queued_at` is
      reset on every send, so a waiting batch gets at most one extra message per window (4 an hour by default).
    - RUNNING for longer than that (past the task's time limit, so its worker was killed): an interruption. It is
      QUEUED again and sent again; the third interruption fails it (scored texts are kept). Once queued again it is
      a queued batch like any other: waiting for a worker does not count against it.

    `enqueue_count` counts sends, `interrupt_count` interruptions."""
    cutoff = timezone.now() - timedelta(seconds=settings.SENTIMENT_STUCK_BATCH_SECONDS)
    requeued, failed = [], []
    with scopes_disabled():
        stuck = list(ScoringBatch.objects.filter(status=BatchStatus.QUEUED, queued_at__lt=cutoff)
                     .values_list("pk", flat=True)) + list(
            ScoringBatch.objects.filter(status=BatchStatus.RUNNING, started_at__lt=cutoff).values_list("pk", flat=True))
    for pk in stuck:
        with transaction.atomic():
            batch = _locked_batch(pk)
            if batch is None or batch.status not in (BatchStatus.QUEUED, BatchStatus.RUNNING):
                continue
            stamp = batch.queued_at if batch.status == BatchStatus.QUEUED else batch.started_at
            if stamp is None or stamp >= cutoff:
                continue  # started or re-sent since the query above
            fields = ["queued_at", "enqueue_count"]
            if batch.status == BatchStatus.RUNNING:
                batch.interrupt_count += 1
                if batch.interrupt_count >= _MAX_INTERRUPTIONS:
                    batch.save(update_fields=["interrupt_count"])
                    transaction.on_commit(lambda pk=pk: batch_fail(
                        batch_id=pk, message="Scoring was interrupted three times and has stopped. Import the texts "
                        "again; already scored texts are kept and will be reported as duplicates."))
                    failed.append(pk)
                    continue
                batch.status, batch.started_at = BatchStatus.QUEUED, None
                fields += ["status", "started_at", "interrupt_count"]
            batch.queued_at = timezone.now()
            batch.enqueue_count = min(batch.enqueue_count + 1, _COUNT_MAX)  # a smallint: months of waiting saturate it
            batch.save(update_fields=fields)
            transaction.on_commit(lambda pk=pk: _enqueue_batch(pk))
            requeued.append(pk)
    if requeued or failed:
        logger.warning("sentiment: sent %s queued or interrupted batch(es) again, failed %s", len(requeued),
                       len(failed))
    return {"requeued": requeued, "failed": failed}


@dataclass(frozen=True)
class ScoredText:
    """One model result for a document, in plain data (the ml package's TextScore, converted by the pipeline)."""

    document_id: int
    label: str
    probabilities: dict[str, float]
    attributions: list[list] | None = None


def entity_dictionary(*, organization: Organization) -> dict[str, list[str]]:
    """Every entity key of the organisation's watchlists with its name and aliases (for entity extraction)."""
    merged: dict[str, list[str]] = defaultdict(list)
    with scope(organization=organization):
        for key, name, aliases in WatchlistEntity.objects.filter(organization=organization).values_list(
                "key", "name", "aliases"):
            for alias in [name, *(aliases or [])]:
                if alias and alias not in merged[key]:
                    merged[key].append(alias)
            merged.setdefault(key, [])
    return dict(merged)


@transaction.atomic
def scores_write(*, organization: Organization, batch_id: int, scored: list[ScoredText], model: SentimentModel,
                 watchlist: dict[str, list[str]]) -> set[str]:
    """Store scores, entity mentions and rollup increments for the batch's documents still QUEUED; returns entity
    keys touched. Documents already scored (a redelivered batch) or since moved to a newer batch (a failed text
    imported again) are skipped, so nothing is counted twice."""
    strong = settings.SENTIMENT_STRONG_NEGATIVE
    with scope(organization=organization):
        by_id = {s.document_id: s for s in scored}
        docs = list(Document.objects.select_for_update().filter(
            organization=organization, batch_id=batch_id, pk__in=list(by_id), status=DocumentStatus.QUEUED))
        if not docs:
            return set()
        now = timezone.now()
        score_rows, mention_rows, increments = [], [], []
        for doc in docs:
            result = by_id[doc.pk]
            p = result.probabilities
            index = p["positive"] - p["negative"]
            score_rows.append(Score(
                organization=organization, document=doc, label=result.label, p_negative=p["negative"],
                p_neutral=p["neutral"], p_positive=p["positive"], sentiment_index=index,
                attributions=result.attributions, model_name=model.name, model_version=model.version,
                model_sha256=model.sha256, scored_at=now))
            keys_seen: set[str] = set()
            for match in extract_entities(text=doc.text, watchlist=watchlist):
                mention_rows.append(EntityMention(
                    organization=organization, document=doc, source_id=doc.source_id, key=match.key[:100],
                    kind=match.kind, start=match.start, end=match.end, text=match.text[:200],
                    published_at=doc.published_at, label=result.label, sentiment_index=index,
                    strongly_negative=p["negative"] >= strong))
                keys_seen.add(match.key[:100])
            for key in keys_seen:  # a document counts once per entity, however often it names it
                increments.append(rollups.Increment(key=key, source_id=doc.source_id, published_at=doc.published_at,
                                                    label=result.label, index=index,
                                                    strongly_negative=p["negative"] >= strong))
        Score.objects.bulk_create(score_rows)
        EntityMention.objects.bulk_create(mention_rows, batch_size=1000)
        rollups.apply(organization_id=organization.pk, increments=increments)
        Document.objects.filter(pk__in=[d.pk for d in docs]).update(status=DocumentStatus.SCORED)
        ScoringBatch.objects.filter(pk=batch_id).update(done=F("done") + len(docs))
    return {inc.key for inc in increments}


# --- watchlists -----------------------------------------------------------------------------------------------------

def _clean_key(key: str) -> str:
    key = key.strip().lstrip("$").upper()
    if not key or len(key) > 100 or any(ch.isspace() for ch in key):
        raise ServiceError("An entity key is a ticker such as AAPL or NWC (no spaces); put company names under "
                           "aliases.")
    return key


@transaction.atomic
def watchlist_create(*, organization: Organization, name: str, description: str = "",
                     created_by: User | None = None) -> Watchlist:
    name = name.strip()
    if not name:
        raise ServiceError("Give the watchlist a name, e.g. 'Banks' or 'Portfolio'.")
    with scope(organization=organization):
        if Watchlist.objects.filter(organization=organization, name=name).exists():
            raise ServiceError(f"A watchlist called '{name}' already exists; choose another name.")
        watchlist = Watchlist.objects.create(organization=organization, name=name, description=description.strip(),
                                             created_by=created_by)
    audit_record(organization=organization, actor=created_by, verb="sentiment.watchlist.create", target=watchlist)
    return watchlist


@transaction.atomic
def watchlist_entity_add(*, watchlist: Watchlist, key: str, name: str = "",
                         aliases: list[str] | str = ()) -> WatchlistEntity:
    """Add (or update) a company: key is its ticker; name and aliases are how the news writes it."""
    key = _clean_key(key)
    if isinstance(aliases, str):
        aliases = aliases.replace("\n", ",").split(",")
    clean = []
    for alias in aliases:
        alias = " ".join(alias.split())
        if alias and alias not in clean and alias != key:
            clean.append(alias[:200])
    with scope(organization=watchlist.organization):
        entity, _ = WatchlistEntity.objects.update_or_create(
            organization=watchlist.organization, watchlist=watchlist, key=key,
            defaults={"name": name.strip()[:200], "aliases": clean})
    return entity


def watchlist_entity_remove(*, entity: WatchlistEntity) -> None:
    entity.delete()


def watchlist_delete(*, watchlist: Watchlist, actor: User | None) -> None:
    audit_record(organization=watchlist.organization, actor=actor, verb="sentiment.watchlist.delete",
                 details={"name": watchlist.name})
    watchlist.delete()


def digest_set(*, watchlist: Watchlist, user: User, enabled: bool) -> bool:
    """Opt the user in or out of the watchlist's daily digest; returns the new state."""
    with scope(organization=watchlist.organization):
        if enabled:
            DigestSubscription.objects.get_or_create(organization=watchlist.organization, watchlist=watchlist,
                                                     user=user)
        else:
            DigestSubscription.objects.filter(watchlist=watchlist, user=user).delete()
    return enabled


def digest_subscriptions_remove(*, organization: Organization, user: User) -> int:
    """Drop every digest opt-in of `user` in `organization` (the member left or was removed); returns how many."""
    with scope(organization=organization):
        deleted, _ = DigestSubscription.objects.filter(organization=organization, user=user).delete()
    return deleted

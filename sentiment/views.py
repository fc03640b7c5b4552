"""Sentiment pages: overview, sources (paste, CSV upload with mapping, feeds with health), scoring progress,
documents with highlighted words and entities, the model card."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views import View

from accounts.capabilities import Capability
from accounts.exceptions import ServiceError
from accounts.permissions import OrganizationRequiredMixin, request_can
from sentiment import csv_import, selectors, services
from sentiment.forms import CsvMappingForm, CsvUploadForm, FeedForm, PasteForm
from sentiment.models import CsvImportStatus, Document, Label, ScoringBatch, SourceKind

PAGE_SIZE = 25


def user_or_none(request):
    return request.user if request.user.is_authenticated else None


def service_error(request, exc: ServiceError, fallback: str):
    if exc.status == 404:
        raise Http404(exc.message) from exc
    messages.error(request, exc.message)
    return redirect(fallback)


class IndexView(OrganizationRequiredMixin, View):
    required_capability = Capability.SENTIMENT_VIEW

    def get(self, request):
        org = request.organization
        watchlists = list(selectors.watchlist_list(organization=org))
        return render(request, "sentiment/index.html", {
            "watchlists": watchlists, "model": selectors.active_model(),
            "n_documents": Document.objects.filter(organization=org).count(),
            "batches": selectors.batch_recent_list(organization=org, limit=5),
            "alerts": list(selectors.alert_list(organization=org)[:5]),
            "can_ingest": request_can(request, Capability.SENTIMENT_INGEST),
            "can_manage": request_can(request, Capability.SENTIMENT_MANAGE),
        })


class SourcesView(OrganizationRequiredMixin, View):
    required_capability = Capability.SENTIMENT_VIEW

    def get(self, request, paste_form=None, csv_form=None, feed_form=None):
        org = request.organization
        return render(request, "sentiment/sources.html", {
            "paste_form": paste_form or PasteForm(initial={"explain": settings.SENTIMENT_EXPLAIN_DEFAULT}),
            "csv_form": csv_form or CsvUploadForm(), "feed_form": feed_form or FeedForm(),
            "feeds": selectors.feed_list(organization=org),
            "sources": [s for s in selectors.source_list(organization=org) if s.kind != SourceKind.FEED],
            "batches": selectors.batch_recent_list(organization=org),
            "can_ingest": request_can(request, Capability.SENTIMENT_INGEST),
            "can_manage": request_can(request, Capability.SENTIMENT_MANAGE),
            "model": selectors.active_model(), "api_max": settings.SENTIMENT_API_MAX_BATCH,
            "site_url": settings.SITE_URL.rstrip("/"),
        })


class PasteView(OrganizationRequiredMixin, View):
    required_capability = Capability.SENTIMENT_INGEST

    def post(self, request):
        form = PasteForm(request.POST)
        if not form.is_valid():
            return SourcesView().get(request, paste_form=form)
        items = services.paste_split(raw=form.cleaned_data["text"], mode=form.cleaned_data["mode"])
        source = services.source_builtin(organization=request.organization, kind=SourceKind.PASTE)
        try:
            result = services.documents_ingest(organization=request.organization, source=source, items=items,
                                               created_by=user_or_none(request),
                                               explain=form.cleaned_data["explain"])
        except ServiceError as exc:
            return service_error(request, exc, "sentiment:sources")
        _report(request, result)
        if result.batch is not None:
            return redirect(f"{reverse('sentiment:documents')}?batch={result.batch.pk}")
        return redirect("sentiment:sources")


def _report(request, result) -> None:
    parts = [f"{result.created} text(s) queued for scoring"]
    if result.requeued:
        parts[0] += f" ({result.requeued} failed before and will be scored again)"
    if result.duplicates:
        parts.append(f"{result.duplicates} already imported (skipped)")
    if result.rejected:
        parts.append(f"{result.rejected} rejected")
    level = messages.success if result.created else messages.warning
    level(request, "; ".join(parts) + ".")
    for r in [r for r in result.results if r.status == "rejected"][:10]:
        messages.error(request, f"Text {r.index + 1}: {r.message}")


class CsvUploadView(OrganizationRequiredMixin, View):
    required_capability = Capability.SENTIMENT_INGEST

    def post(self, request):
        form = CsvUploadForm(request.POST, request.FILES)
        if not form.is_valid():
            return SourcesView().get(request, csv_form=form)
        try:
            upload = csv_import.csv_import_create(organization=request.organization, upload=form.cleaned_data["file"],
                                                  created_by=user_or_none(request))
        except ServiceError as exc:
            form.add_error("file", exc.message)
            return SourcesView().get(request, csv_form=form)
        return redirect("sentiment:csv-import", pk=upload.pk)


class CsvImportView(OrganizationRequiredMixin, View):
    """Step two of a CSV upload: choose the columns, then see what was imported and which rows were not."""

    capabilities = {"GET": Capability.SENTIMENT_VIEW, "POST": Capability.SENTIMENT_INGEST}

    def _render(self, request, upload, form=None):
        form = form or CsvMappingForm(headers=upload.headers, initial_mapping=upload.mapping,
                                      initial={"explain": settings.SENTIMENT_EXPLAIN_DEFAULT})
        return render(request, "sentiment/csv_import.html", {
            "upload": upload, "form": form, "preview": upload.preview, "headers": upload.headers,
            "batch": upload.batch, "can_ingest": request_can(request, Capability.SENTIMENT_INGEST)})

    def get(self, request, pk):
        return self._render(request, selectors.csv_import_get(organization=request.organization, pk=pk))

    def post(self, request, pk):
        upload = selectors.csv_import_get(organization=request.organization, pk=pk)
        if upload.status != CsvImportStatus.MAPPING:
            messages.info(request, "This file was already imported; the results are below.")
            return redirect("sentiment:csv-import", pk=upload.pk)
        form = CsvMappingForm(request.POST, headers=upload.headers, initial_mapping=upload.mapping)
        if not form.is_valid():
            return self._render(request, upload, form)
        try:
            csv_import.csv_import_run(csv_import=upload, mapping=form.mapping(), created_by=user_or_none(request),
                                      explain=form.cleaned_data["explain"])
        except ServiceError as exc:
            form.add_error(None, exc.message)
            return self._render(request, upload, form)
        return redirect("sentiment:csv-import", pk=upload.pk)


class FeedCreateView(OrganizationRequiredMixin, View):
    required_capability = Capability.SENTIMENT_MANAGE

    def post(self, request):
        form = FeedForm(request.POST)
        if not form.is_valid():
            return SourcesView().get(request, feed_form=form)
        try:
            services.feed_create(organization=request.organization, url=form.cleaned_data["url"],
                                 name=form.cleaned_data["name"],
                                 poll_interval_minutes=form.cleaned_data["poll_interval_minutes"],
                                 created_by=user_or_none(request))
        except ServiceError as exc:
            form.add_error("url", exc.message)
            return SourcesView().get(request, feed_form=form)
        messages.success(request, "Feed added; it is fetched now and then on its interval.")
        return redirect(f"{reverse('sentiment:sources')}#feeds")


class FeedActionView(OrganizationRequiredMixin, View):
    required_capability = Capability.SENTIMENT_MANAGE
    action = ""

    def post(self, request, pk):
        feed = selectors.feed_get(organization=request.organization, pk=pk)
        if self.action == "poll":
            services.feed_poll_request(source=feed)
            messages.success(request, f"Fetching {feed.name} now; refresh in a moment to see the result.")
        elif self.action == "toggle":
            services.feed_update(source=feed, is_active=not feed.is_active)
            messages.success(request, f"{feed.name} {'resumed' if feed.is_active else 'paused'}.")
        elif self.action == "delete":
            services.feed_delete(source=feed, actor=user_or_none(request))
            messages.success(request, f"{feed.name} removed with its documents.")
        return redirect(f"{reverse('sentiment:sources')}#feeds")


class BatchStatusView(OrganizationRequiredMixin, View):
    """htmx partial: progress of one scoring batch; polls itself while the batch is active."""

    required_capability = Capability.SENTIMENT_VIEW

    def get(self, request, pk):
        batch = selectors.batch_get(organization=request.organization, pk=pk)
        return render(request, "sentiment/partials/batch_status.html", {"batch": batch})


class ActiveBatchesView(OrganizationRequiredMixin, View):
    required_capability = Capability.SENTIMENT_VIEW

    def get(self, request):
        batches = list(selectors.batch_active_list(organization=request.organization))
        return render(request, "sentiment/partials/active_batches.html", {"active_batches": batches})


class DocumentListView(OrganizationRequiredMixin, View):
    required_capability = Capability.SENTIMENT_VIEW

    def get(self, request):
        org = request.organization
        f = {"label": request.GET.get("label", ""), "source": request.GET.get("source", ""),
             "entity": request.GET.get("entity", "").strip()[:100], "q": request.GET.get("q", "").strip()[:200],
             "batch": request.GET.get("batch", "")}
        if f["label"] not in Label.values:
            f["label"] = ""
        qs = selectors.document_list(organization=org, source_id=f["source"], label=f["label"], entity=f["entity"],
                                     q=f["q"], batch_id=f["batch"])
        page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
        batch = None
        if f["batch"].isdigit():
            batch = ScoringBatch.objects.filter(organization=org, pk=f["batch"]).first()
        query = "&".join(f"{k}={v}" for k, v in f.items() if v)
        return render(request, "sentiment/documents.html", {
            "page": page, "filters": f, "query": query, "labels": Label.choices, "batch": batch,
            "sources": selectors.source_list(organization=org)})


class DocumentDetailView(OrganizationRequiredMixin, View):
    required_capability = Capability.SENTIMENT_VIEW

    def get(self, request, pk):
        doc = selectors.document_get(organization=request.organization, pk=pk)
        return render(request, "sentiment/document_detail.html", {
            "doc": doc, "score": getattr(doc, "score", None), "segments": selectors.document_segments(document=doc),
            "top_words": selectors.top_words(document=doc), "mentions": list(doc.mentions.all())})


class ModelCardView(OrganizationRequiredMixin, View):
    required_capability = Capability.SENTIMENT_VIEW

    def get(self, request):
        model = selectors.active_model()
        metrics = model.metrics if model else {}
        return render(request, "sentiment/model_card.html", {
            "model": model, "test": metrics.get("test"), "eval": metrics.get("eval"),
            "training": metrics.get("training")})

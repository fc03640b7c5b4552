"""Watchlists and their dashboards: entities with aliases, digest opt-in, charts fed by the hourly rollups,
top movers, latest strongly negative documents and the documents behind a chart point."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import View

from accounts.capabilities import Capability
from accounts.exceptions import ServiceError
from accounts.permissions import OrganizationRequiredMixin, request_can
from sentiment import selectors, services
from sentiment.forms import EntityForm, WatchlistForm
from sentiment.views import user_or_none

MOVER_PERIOD = {"hour": timedelta(hours=24), "day": timedelta(days=7), "week": timedelta(days=28)}
MAX_COMPARED = 8
DEFAULT_COMPARED = 5


class WatchlistListView(OrganizationRequiredMixin, View):
    capabilities = {"GET": Capability.SENTIMENT_VIEW, "POST": Capability.SENTIMENT_MANAGE}

    def get(self, request, form=None):
        return render(request, "sentiment/watchlists.html", {
            "watchlists": selectors.watchlist_list(organization=request.organization),
            "form": form or WatchlistForm(), "can_manage": request_can(request, Capability.SENTIMENT_MANAGE)})

    def post(self, request):
        form = WatchlistForm(request.POST)
        if not form.is_valid():
            return self.get(request, form)
        try:
            watchlist = services.watchlist_create(organization=request.organization, name=form.cleaned_data["name"],
                                                  description=form.cleaned_data["description"],
                                                  created_by=user_or_none(request))
        except ServiceError as exc:
            form.add_error("name", exc.message)
            return self.get(request, form)
        messages.success(request, f"Watchlist {watchlist.name} created; add the companies to follow.")
        return redirect("sentiment:watchlist-detail", pk=watchlist.pk)


class WatchlistDetailView(OrganizationRequiredMixin, View):
    capabilities = {"GET": Capability.SENTIMENT_VIEW, "POST": Capability.SENTIMENT_MANAGE}

    def get(self, request, pk, form=None):
        org = request.organization
        watchlist = selectors.watchlist_get(organization=org, pk=pk)
        return render(request, "sentiment/watchlist_detail.html", {
            "watchlist": watchlist, "entities": selectors.watchlist_entities(organization=org, watchlist=watchlist),
            "form": form or EntityForm(), "can_manage": request_can(request, Capability.SENTIMENT_MANAGE),
            "digest": selectors.digest_subscribed(watchlist=watchlist, user=request.user),
            "rules": selectors.alert_rule_list(organization=org, watchlist=watchlist)})

    def post(self, request, pk):
        """Add (or update) an entity."""
        watchlist = selectors.watchlist_get(organization=request.organization, pk=pk)
        form = EntityForm(request.POST)
        if not form.is_valid():
            return self.get(request, pk, form)
        try:
            entity = services.watchlist_entity_add(watchlist=watchlist, **form.cleaned_data)
        except ServiceError as exc:
            form.add_error("key", exc.message)
            return self.get(request, pk, form)
        messages.success(request, f"{entity.key} is on {watchlist.name}. Documents scored from now on are matched "
                         "against its names.")
        return redirect("sentiment:watchlist-detail", pk=watchlist.pk)


class WatchlistDeleteView(OrganizationRequiredMixin, View):
    required_capability = Capability.SENTIMENT_MANAGE

    def post(self, request, pk):
        watchlist = selectors.watchlist_get(organization=request.organization, pk=pk)
        services.watchlist_delete(watchlist=watchlist, actor=user_or_none(request))
        messages.success(request, f"Watchlist {watchlist.name} deleted.")
        return redirect("sentiment:watchlists")


class EntityDeleteView(OrganizationRequiredMixin, View):
    required_capability = Capability.SENTIMENT_MANAGE

    def post(self, request, pk):
        entity = selectors.watchlist_entity_get(organization=request.organization, pk=pk)
        watchlist_id = entity.watchlist_id
        services.watchlist_entity_remove(entity=entity)
        messages.success(request, f"{entity.key} removed from the watchlist.")
        return redirect("sentiment:watchlist-detail", pk=watchlist_id)


class DigestToggleView(OrganizationRequiredMixin, View):
    required_capability = Capability.SENTIMENT_VIEW

    def post(self, request, pk):
        watchlist = selectors.watchlist_get(organization=request.organization, pk=pk)
        enabled = services.digest_set(watchlist=watchlist, user=request.user, enabled=request.POST.get("on") == "1")
        state = "on: it arrives each morning (UTC)" if enabled else "off"
        messages.success(request, f"Daily digest of {watchlist.name} {state}.")
        target = request.POST.get("next", "")
        if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
            target = reverse("sentiment:watchlist-detail", kwargs={"pk": pk})
        return redirect(target)


# --- dashboard ------------------------------------------------------------------------------------------------------

def _filters(request, keys: list[str]) -> dict:
    g = request.GET
    bucket = g.get("bucket", "day") if g.get("bucket") in selectors.BUCKETS else "day"
    days = int(g["days"]) if g.get("days", "").isdigit() and 0 < int(g["days"]) <= 3660 else 30
    start, end = selectors.dashboard_range(days=days, start=g.get("start", ""), end=g.get("end", ""))
    if bucket == "hour" and end - start > timedelta(days=31):
        bucket = "day"  # 744 points per line is the most a chart stays readable with
    sources = [int(s) for s in g.getlist("source") if s.isdigit()] or None
    wanted = [k.strip().upper() for k in [*g.get("entities", "").split(","), *g.getlist("entity")] if k.strip()]
    chosen = [k for k in wanted if k in keys][:MAX_COMPARED]
    return {"bucket": bucket, "days": days, "start": start, "end": end, "sources": sources, "entities": chosen,
            "custom_range": bool(g.get("start") or g.get("end"))}


class DashboardView(OrganizationRequiredMixin, View):
    required_capability = Capability.SENTIMENT_VIEW

    def get(self, request, pk):
        org = request.organization
        watchlist = selectors.watchlist_get(organization=org, pk=pk)
        entities = list(selectors.watchlist_entities(organization=org, watchlist=watchlist))
        keys = [e.key for e in entities]
        f = _filters(request, keys)
        if not f["entities"] and keys:
            totals = selectors.window_totals(organization=org, keys=keys, start=f["start"], end=f["end"],
                                             source_ids=f["sources"])
            by_volume = sorted(keys, key=lambda k: -(totals.get(k, {}).get("count") or 0))
            f["entities"] = by_volume[:DEFAULT_COMPARED]
        return render(request, "sentiment/dashboard.html", {
            "watchlist": watchlist, "entities": entities, "f": f, "buckets": list(selectors.BUCKETS),
            "sources": selectors.source_list(organization=org), "model": selectors.active_model(),
            "digest": selectors.digest_subscribed(watchlist=watchlist, user=request.user),
            "start_date": f["start"].date().isoformat(),
            "end_date": (f["end"] - timedelta(seconds=1)).date().isoformat(),
            "refresh_seconds": 15, "active_batches": list(selectors.batch_active_list(organization=org)),
            "can_ingest": request_can(request, Capability.SENTIMENT_INGEST)})


class DashboardDataView(OrganizationRequiredMixin, View):
    """JSON for the charts, plus the movers and negatives panels as HTML; polled for live refresh."""

    required_capability = Capability.SENTIMENT_VIEW

    def get(self, request, pk):
        org = request.organization
        watchlist = selectors.watchlist_get(organization=org, pk=pk)
        keys = selectors.watchlist_keys(organization=org, watchlist=watchlist)
        f = _filters(request, keys)
        chosen = f["entities"] or keys[:DEFAULT_COMPARED]
        series = selectors.entity_series(organization=org, keys=chosen, start=f["start"], end=f["end"],
                                         bucket=f["bucket"], source_ids=f["sources"])
        period = MOVER_PERIOD[f["bucket"]]
        movers = selectors.top_movers(organization=org, keys=keys, end=f["end"], period=period,
                                      source_ids=f["sources"])
        negatives = selectors.latest_strongly_negative(organization=org, keys=keys, start=f["start"], end=f["end"],
                                                       source_ids=f["sources"])
        return JsonResponse({
            "bucket": f["bucket"], "bucket_ms": int(selectors.BUCKETS[f["bucket"]].total_seconds() * 1000),
            "start": int(f["start"].timestamp() * 1000), "end": int(f["end"].timestamp() * 1000),
            "entities": chosen, "series": series,
            "movers_html": render_to_string("sentiment/partials/movers.html", {
                "movers": movers, "period_days": period.days or 1, "watchlist": watchlist}, request=request),
            "negatives_html": render_to_string("sentiment/partials/negatives.html", {
                "documents": negatives, "threshold": selectors.strong_negative_threshold()}, request=request),
            "updated": datetime.now(UTC).isoformat(timespec="seconds"),
        })


class DashboardPointView(OrganizationRequiredMixin, View):
    """htmx/fetch partial: the documents behind one chart point, highlighted."""

    required_capability = Capability.SENTIMENT_VIEW

    def get(self, request, pk):
        org = request.organization
        watchlist = selectors.watchlist_get(organization=org, pk=pk)
        key = request.GET.get("key", "").strip().upper()
        try:
            start = datetime.fromtimestamp(int(request.GET.get("start", "")) / 1000, tz=UTC)
            end = datetime.fromtimestamp(int(request.GET.get("end", "")) / 1000, tz=UTC)
        except ValueError:
            return render(request, "sentiment/partials/point_documents.html",
                          {"error": "Click a point on the chart to see its documents."})
        sources = [int(s) for s in request.GET.getlist("source") if s.isdigit()] or None
        qs = selectors.point_documents(organization=org, key=key, start=start, end=end, source_ids=sources)
        page = Paginator(qs, 10).get_page(request.GET.get("page"))
        query = request.GET.copy()
        query.pop("page", None)
        docs = [(doc, selectors.document_segments(document=doc)) for doc in page]
        return render(request, "sentiment/partials/point_documents.html", {
            "watchlist": watchlist, "key": key, "start": start, "end": end, "page": page, "docs": docs,
            "query": query.urlencode()})


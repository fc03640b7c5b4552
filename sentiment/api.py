"""REST endpoints: documents (batch create with per-item results, list, detail), batches, entity time series,
alerts and alert rules."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.capabilities import Capability
from accounts.exceptions import ServiceError
from sentiment import selectors, services
from sentiment.models import Label, SourceKind

# --- documents ------------------------------------------------------------------------------------------------------


class DocumentItemInput(serializers.Serializer):
    text = serializers.CharField(allow_blank=True, trim_whitespace=False)
    title = serializers.CharField(required=False, allow_blank=True, max_length=500)
    url = serializers.URLField(required=False, allow_blank=True, max_length=1000)
    source = serializers.CharField(required=False, allow_blank=True, max_length=200, help_text="publisher name")
    published_at = serializers.DateTimeField(required=False, allow_null=True)
    language = serializers.CharField(required=False, allow_blank=True, max_length=16)
    external_id = serializers.CharField(required=False, allow_blank=True, max_length=500)


class DocumentCreateInput(serializers.Serializer):
    documents = serializers.ListField(child=serializers.DictField(), allow_empty=False,
                                      help_text=f"up to {settings.SENTIMENT_API_MAX_BATCH} items")
    explain = serializers.BooleanField(required=False, help_text="compute word attributions (default on)")


class ItemResultOutput(serializers.Serializer):
    index = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["created", "duplicate", "rejected"])
    document_id = serializers.IntegerField(allow_null=True)
    message = serializers.CharField()


class BatchOutput(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    total = serializers.IntegerField()
    done = serializers.IntegerField()
    explain = serializers.BooleanField()
    error_message = serializers.CharField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


class DocumentCreateOutput(serializers.Serializer):
    batch = BatchOutput(allow_null=True)
    summary = serializers.DictField(child=serializers.IntegerField())
    results = ItemResultOutput(many=True)


class ScoreOutput(serializers.Serializer):
    label = serializers.CharField()
    probabilities = serializers.DictField(child=serializers.FloatField())
    sentiment_index = serializers.FloatField()
    model = serializers.SerializerMethodField()

    def get_model(self, score) -> dict:
        return {"name": score.model_name, "version": score.model_version, "sha256": score.model_sha256}


class DocumentOutput(serializers.Serializer):
    id = serializers.IntegerField()
    title = serializers.CharField()
    text = serializers.CharField()
    url = serializers.CharField()
    publisher = serializers.CharField()
    language = serializers.CharField()
    published_at = serializers.DateTimeField()
    status = serializers.CharField()
    source = serializers.SerializerMethodField()
    score = serializers.SerializerMethodField()

    def get_source(self, doc) -> dict:
        return {"id": doc.source_id, "kind": doc.source.kind, "name": doc.source.name}

    def get_score(self, doc) -> dict | None:
        score = getattr(doc, "score", None)
        return ScoreOutput(score).data if score else None


class MentionOutput(serializers.Serializer):
    key = serializers.CharField()
    kind = serializers.CharField()
    start = serializers.IntegerField()
    end = serializers.IntegerField()
    text = serializers.CharField()


class DocumentDetailOutput(DocumentOutput):
    entities = serializers.SerializerMethodField()
    attributions = serializers.SerializerMethodField()

    def get_entities(self, doc) -> list[dict]:
        return MentionOutput(doc.mentions.all(), many=True).data

    def get_attributions(self, doc) -> list[dict] | None:
        score = getattr(doc, "score", None)
        if not score or score.attributions is None:
            return None
        return [{"start": s, "end": e, "text": doc.text[s:e], "score": v} for s, e, v in score.attributions]


class DocumentListCreateView(ListAPIView):
    """GET: documents, newest first (filters: label, source, entity, batch, q). POST: up to 1,000 texts at once."""

    capabilities = {"GET": Capability.SENTIMENT_VIEW, "POST": Capability.SENTIMENT_INGEST}
    serializer_class = DocumentOutput

    @extend_schema(parameters=[OpenApiParameter(n, str, required=False)
                               for n in ("label", "source", "entity", "batch", "q")])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        p = self.request.query_params
        label = p.get("label", "")
        return selectors.document_list(organization=self.request.organization, source_id=p.get("source"),
                                       label=label if label in Label.values else "", entity=p.get("entity", ""),
                                       q=p.get("q", "")[:200], batch_id=p.get("batch"))

    @extend_schema(request=DocumentCreateInput, responses={201: DocumentCreateOutput, 200: DocumentCreateOutput})
    def post(self, request):
        data = request.data
        if isinstance(data, list):
            data = {"documents": data}
        body = DocumentCreateInput(data=data)
        body.is_valid(raise_exception=True)
        raw_items = body.validated_data["documents"]
        limit = settings.SENTIMENT_API_MAX_BATCH
        if len(raw_items) > limit:
            raise services.BatchTooLarge(f"{len(raw_items):,} documents were sent; send at most {limit:,} per request "
                                         "and split the rest into further requests.",
                                         details={"max_items": limit, "received": len(raw_items)})
        items = []
        for raw in raw_items:
            item = DocumentItemInput(data=raw)
            if item.is_valid():
                v = item.validated_data
                items.append(services.IngestItem(
                    text=v["text"], title=v.get("title", ""), url=v.get("url", ""), publisher=v.get("source", ""),
                    published_at=v.get("published_at"), language=v.get("language") or None,
                    external_id=v.get("external_id", "")))
            else:  # kept in place, so every index and "same text as item N" is the request's own numbering
                items.append(services.IngestItem(text="", problem="invalid fields: " + "; ".join(
                    f"{field}: {' '.join(str(e) for e in errors)}" for field, errors in item.errors.items())))
        source = services.source_builtin(organization=request.organization, kind=SourceKind.API)
        user = request.user if request.user.is_authenticated else None
        result = services.documents_ingest(organization=request.organization, source=source, items=items,
                                           created_by=user, explain=body.validated_data.get("explain"))
        results = [{"index": r.index, "status": r.status, "document_id": r.document_id, "message": r.message}
                   for r in result.results]
        summary = {s: result.count(s) for s in ("created", "duplicate", "rejected")}
        out = {"batch": BatchOutput(result.batch).data if result.batch else None, "summary": summary,
               "results": results}
        return Response(out, status=status.HTTP_201_CREATED if result.batch else status.HTTP_200_OK)


class DocumentDetailView(APIView):
    required_capability = Capability.SENTIMENT_VIEW

    @extend_schema(responses=DocumentDetailOutput)
    def get(self, request, pk: int):
        doc = selectors.document_get(organization=request.organization, pk=pk)
        return Response(DocumentDetailOutput(doc).data)


class BatchDetailView(APIView):
    required_capability = Capability.SENTIMENT_VIEW

    @extend_schema(responses=BatchOutput)
    def get(self, request, pk: int):
        return Response(BatchOutput(selectors.batch_get(organization=request.organization, pk=pk)).data)


# --- entity time series ---------------------------------------------------------------------------------------------

class EntitySeriesView(APIView):
    """Sentiment index, volume and negative share per hour/day/week for one entity (from the hourly rollups)."""

    required_capability = Capability.SENTIMENT_VIEW

    @extend_schema(parameters=[
        OpenApiParameter("bucket", str, enum=["hour", "day", "week"], required=False),
        OpenApiParameter("start", str, required=False, description="ISO date, inclusive"),
        OpenApiParameter("end", str, required=False, description="ISO date, inclusive"),
        OpenApiParameter("days", int, required=False, description="last N days when start is not given"),
        OpenApiParameter("source", str, required=False, description="comma-separated source ids"),
    ])
    def get(self, request, key: str):
        p = request.query_params
        bucket = p.get("bucket", "day")
        if bucket not in selectors.BUCKETS:
            raise ServiceError("bucket must be hour, day or week.")
        days = int(p["days"]) if p.get("days", "").isdigit() else None
        start, end = selectors.dashboard_range(days=days, start=p.get("start", ""), end=p.get("end", ""))
        source_ids = [int(s) for s in p.get("source", "").split(",") if s.strip().isdigit()] or None
        key = key.strip().lstrip("$").upper()
        series = selectors.entity_series(organization=request.organization, keys=[key], start=start, end=end,
                                         bucket=bucket, source_ids=source_ids)[key]
        return Response({"entity": key, "bucket": bucket, "start": start, "end": end, "points": series})


# --- alerts ---------------------------------------------------------------------------------------------------------

class AlertOutput(serializers.Serializer):
    id = serializers.IntegerField()
    rule = serializers.SerializerMethodField()
    entity = serializers.CharField(source="entity_key")
    triggered_at = serializers.DateTimeField()
    window_start = serializers.DateTimeField()
    window_end = serializers.DateTimeField()
    value = serializers.FloatField()
    volume = serializers.IntegerField()
    negatives = serializers.IntegerField()
    message = serializers.CharField()

    def get_rule(self, alert) -> dict:
        return {"id": alert.rule_id, "name": alert.rule.name, "kind": alert.rule.kind}


class AlertDetailOutput(AlertOutput):
    documents = serializers.SerializerMethodField()

    def get_documents(self, alert) -> list[dict]:
        docs = selectors.alert_documents(organization=alert.organization, alert=alert)
        return DocumentOutput(docs, many=True).data


class AlertListView(ListAPIView):
    required_capability = Capability.SENTIMENT_VIEW
    serializer_class = AlertOutput

    def get_queryset(self):
        return selectors.alert_list(organization=self.request.organization)


class AlertDetailView(APIView):
    required_capability = Capability.SENTIMENT_VIEW

    @extend_schema(responses=AlertDetailOutput)
    def get(self, request, pk: int):
        return Response(AlertDetailOutput(selectors.alert_get(organization=request.organization, pk=pk)).data)


class AlertRuleOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    watchlist = serializers.CharField(source="watchlist.name")
    entity = serializers.CharField(source="entity_key")
    kind = serializers.CharField()
    threshold = serializers.FloatField()
    window_hours = serializers.IntegerField()
    min_volume = serializers.IntegerField()
    baseline_days = serializers.IntegerField()
    cooldown_minutes = serializers.IntegerField()
    is_active = serializers.BooleanField()


class AlertRuleListView(ListAPIView):
    required_capability = Capability.SENTIMENT_VIEW
    serializer_class = AlertRuleOutput

    def get_queryset(self):
        return selectors.alert_rule_list(organization=self.request.organization)

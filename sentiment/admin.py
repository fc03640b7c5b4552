from django.contrib import admin

from sentiment.models import AlertRule, ScoringBatch, SentimentModel, Source


@admin.register(SentimentModel)
class SentimentModelAdmin(admin.ModelAdmin):
    list_display = ("name", "version", "is_active", "is_demo", "created_at")
    readonly_fields = ("sha256", "manifest", "created_at")


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "organization", "is_active", "last_fetch_at", "consecutive_failures")
    list_filter = ("kind", "is_active")

    def get_queryset(self, request):
        return Source.objects.with_scopes_disabled()


@admin.register(ScoringBatch)
class ScoringBatchAdmin(admin.ModelAdmin):
    list_display = ("pk", "organization", "status", "total", "done", "created_at")
    list_filter = ("status",)

    def get_queryset(self, request):
        return ScoringBatch.objects.with_scopes_disabled()


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = ("name", "organization", "kind", "is_active")
    exclude = ("webhook_secret",)

    def get_queryset(self, request):
        return AlertRule.objects.with_scopes_disabled()

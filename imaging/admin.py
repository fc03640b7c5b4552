"""Operator views of the registry and of jobs; tenant rows are read with scopes disabled by the admin itself."""

from django.contrib import admin

from imaging.models import AnalysisJob, ImagingModel


@admin.register(ImagingModel)
class ImagingModelAdmin(admin.ModelAdmin):
    list_display = ("name", "version", "task", "is_active", "is_demo", "sha256", "created_at")
    list_filter = ("task", "is_active", "is_demo")
    readonly_fields = ("sha256", "manifest", "path")


@admin.register(AnalysisJob)
class AnalysisJobAdmin(admin.ModelAdmin):
    list_display = ("pk", "organization", "study", "status", "images_done", "images_total", "attempt", "created_at")
    list_filter = ("status",)
    readonly_fields = [f.name for f in AnalysisJob._meta.fields]

    def get_queryset(self, request):
        return AnalysisJob.objects.with_scopes_disabled().select_related("organization", "study")

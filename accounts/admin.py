from django.contrib import admin

from accounts.models import ApiKey, AuditEvent, Invitation, Membership, Organization, User


class UnscopedAdmin(admin.ModelAdmin):
    """Operators see every organisation; the scope guard is for tenant-facing code."""

    def get_queryset(self, request):
        return self.model.objects.with_scopes_disabled().all()


@admin.register(User)
class UserAdmin(admin.ModelAdmin):
    list_display = ("email", "name", "is_active", "is_staff", "date_joined")
    search_fields = ("email", "name")


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "created_at", "is_demo")
    search_fields = ("name", "slug")


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "organization", "role", "created_at")
    list_filter = ("role",)


@admin.register(Invitation)
class InvitationAdmin(UnscopedAdmin):
    list_display = ("email", "organization", "role", "created_at", "expires_at", "accepted_at", "revoked_at")
    exclude = ("token_hash",)


@admin.register(ApiKey)
class ApiKeyAdmin(UnscopedAdmin):
    list_display = ("name", "prefix", "organization", "scope", "created_at", "last_used_at", "revoked_at")
    exclude = ("key_hash",)


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "organization", "actor_label", "verb", "target_label", "ip_address")
    list_filter = ("verb",)

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False

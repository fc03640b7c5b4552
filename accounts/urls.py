from django.urls import path

from accounts import views

app_name = "accounts"
urlpatterns = [
    path("new/", views.organization_create, name="organization-create"),
    path("switch/", views.organization_switch, name="organization-switch"),
    path("members/", views.MembersView.as_view(), name="members"),
    path("members/<int:pk>/role/", views.MemberRoleView.as_view(), name="member-role"),
    path("members/<int:pk>/remove/", views.MemberRemoveView.as_view(), name="member-remove"),
    path("invitations/", views.InvitationCreateView.as_view(), name="invitation-create"),
    path("invitations/<int:pk>/revoke/", views.InvitationRevokeView.as_view(), name="invitation-revoke"),
    path("invitations/accept/<str:token>/", views.invitation_accept, name="invitation-accept"),
    path("api-keys/", views.ApiKeysView.as_view(), name="api-keys"),
    path("api-keys/<int:pk>/revoke/", views.ApiKeyRevokeView.as_view(), name="api-key-revoke"),
    path("audit/", views.AuditLogView.as_view(), name="audit-log"),
]

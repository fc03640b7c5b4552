"""Organisation pages: home, create/switch, members, invitations, API keys, audit log."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views import View
from django.views.decorators.http import require_POST

from accounts import selectors, services
from accounts.capabilities import ROLES_ASSIGNABLE_BY, Capability
from accounts.exceptions import ServiceError
from accounts.forms import ApiKeyForm, AuditFilterForm, InvitationForm, OrganizationForm, RoleForm
from accounts.models import Membership
from accounts.permissions import OrganizationRequiredMixin, request_can
from accounts.tenancy import SESSION_KEY, client_ip


def home(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect("account_login")
    if request.organization is None:
        return redirect("accounts:organization-create")
    return render(request, "accounts/home.html")


@login_required
def organization_create(request: HttpRequest) -> HttpResponse:
    form = OrganizationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            org = services.organization_create(name=form.cleaned_data["name"], owner=request.user)
        except ServiceError as exc:
            form.add_error("name", exc.message)
        else:
            request.session[SESSION_KEY] = org.pk
            messages.success(request, f"{org.name} is ready. Invite your colleagues next.")
            return redirect("accounts:members")
    return render(request, "accounts/organization_create.html", {"form": form})


@login_required
@require_POST
def organization_switch(request: HttpRequest) -> HttpResponse:
    org_id = request.POST.get("organization_id", "")
    membership = selectors.memberships_for_user(user=request.user).filter(organization_id=org_id).first() \
        if org_id.isdigit() else None
    if membership is None:
        messages.error(request, "You are not a member of that organisation.")
    else:
        request.session[SESSION_KEY] = membership.organization_id
        messages.info(request, f"Switched to {membership.organization.name}.")
    return redirect("home")


class MembersView(OrganizationRequiredMixin, View):
    required_capability = Capability.ORG_VIEW

    def get(self, request):
        role = request.membership.role if request.membership else None
        return render(request, "accounts/members.html", {
            "members": selectors.membership_list(organization=request.organization),
            "assignable_roles": sorted(ROLES_ASSIGNABLE_BY.get(role, frozenset())),
            "invite_form": InvitationForm(),
            "invitations": selectors.invitation_list(organization=request.organization, pending_only=True),
        })


def _service_redirect(request, fn, success: str, target: str, **kwargs) -> HttpResponse:
    try:
        fn(**kwargs)
    except ServiceError as exc:
        if exc.status == 404:
            from django.http import Http404

            raise Http404(exc.message) from exc
        messages.error(request, exc.message)
    else:
        messages.success(request, success)
    return redirect(target)


class MemberRoleView(OrganizationRequiredMixin, View):
    required_capability = Capability.MEMBERS_MANAGE

    def post(self, request, pk: int):
        get_object_or_404(selectors.membership_list(organization=request.organization), pk=pk)
        form = RoleForm(request.POST)
        if not form.is_valid():
            messages.error(request, "Choose a valid role.")
            return redirect("accounts:members")
        return _service_redirect(request, services.membership_change_role, "Role updated.", "accounts:members",
                                 organization=request.organization, actor=request.user,
                                 actor_role=request.membership.role, membership_id=pk, role=form.cleaned_data["role"])


class MemberRemoveView(OrganizationRequiredMixin, View):
    required_capability = Capability.ORG_VIEW  # leaving needs no more; removing others is checked below

    def post(self, request, pk: int):
        get_object_or_404(selectors.membership_list(organization=request.organization), pk=pk)
        own = request.membership and request.membership.pk == pk
        if not own and not request_can(request, Capability.MEMBERS_MANAGE):
            messages.error(request, "Only owners and admins can remove members.")
            return redirect("accounts:members")
        target = "home" if own else "accounts:members"
        response = _service_redirect(request, services.membership_remove, "You left the organisation." if own
                                     else "Member removed.", target, organization=request.organization,
                                     actor=request.user, actor_role=request.membership.role, membership_id=pk)
        if own and not Membership.objects.filter(pk=pk).exists():
            request.session.pop(SESSION_KEY, None)
        return response


class InvitationCreateView(OrganizationRequiredMixin, View):
    required_capability = Capability.MEMBERS_MANAGE

    def post(self, request):
        form = InvitationForm(request.POST)
        if not form.is_valid():
            messages.error(request, "Enter a valid e-mail address and role.")
            return redirect("accounts:members")
        return _service_redirect(request, services.invitation_create,
                                 f"Invitation sent to {form.cleaned_data['email']}.", "accounts:members",
                                 organization=request.organization, invited_by=request.user,
                                 actor_role=request.membership.role, email=form.cleaned_data["email"],
                                 role=form.cleaned_data["role"], ip_address=client_ip(request))


class InvitationRevokeView(OrganizationRequiredMixin, View):
    required_capability = Capability.MEMBERS_MANAGE

    def post(self, request, pk: int):
        return _service_redirect(request, services.invitation_revoke, "Invitation revoked.", "accounts:members",
                                 organization=request.organization, actor=request.user, invitation_id=pk)


def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    try:
        invitation = services.invitation_for_token(token=token)
    except ServiceError as exc:
        return render(request, "accounts/invitation_accept.html", {"error": exc.message}, status=404)
    if not request.user.is_authenticated:
        request.session["pending_invitation"] = token
        return render(request, "accounts/invitation_accept.html", {"invitation": invitation, "anonymous": True})
    if request.method == "POST":
        try:
            membership = services.invitation_accept(token=token, user=request.user)
        except ServiceError as exc:
            return render(request, "accounts/invitation_accept.html", {"invitation": invitation, "error": exc.message})
        request.session[SESSION_KEY] = membership.organization_id
        messages.success(request, f"Welcome to {membership.organization.name}.")
        return redirect("home")
    return render(request, "accounts/invitation_accept.html", {"invitation": invitation})


class ApiKeysView(OrganizationRequiredMixin, View):
    required_capability = Capability.API_KEYS_MANAGE

    def get(self, request, form=None, new_key=None):
        return render(request, "accounts/api_keys.html", {
            "keys": selectors.api_key_list(organization=request.organization),
            "form": form or ApiKeyForm(), "new_key": new_key,
            "api_base": request.build_absolute_uri(reverse("api-docs")),
        })

    def post(self, request):
        form = ApiKeyForm(request.POST)
        if form.is_valid():
            try:
                key, raw = services.api_key_create(organization=request.organization, created_by=request.user,
                                                   name=form.cleaned_data["name"], scope=form.cleaned_data["scope"],
                                                   ip_address=client_ip(request))
            except ServiceError as exc:
                form.add_error(None, exc.message)
            else:
                return self.get(request, new_key={"key": key, "raw": raw})
        return self.get(request, form=form)


class ApiKeyRevokeView(OrganizationRequiredMixin, View):
    required_capability = Capability.API_KEYS_MANAGE

    def post(self, request, pk: int):
        return _service_redirect(request, services.api_key_revoke, "API key revoked.", "accounts:api-keys",
                                 organization=request.organization, actor=request.user, api_key_id=pk)


class AuditLogView(OrganizationRequiredMixin, View):
    required_capability = Capability.AUDIT_VIEW
    page_size = 50

    def get(self, request):
        form = AuditFilterForm(request.GET or None)
        filters = form.cleaned_data if form.is_valid() else {}
        events = selectors.audit_event_list(organization=request.organization, **{k: v for k, v in filters.items()
                                                                                   if v})
        page = Paginator(events, self.page_size).get_page(request.GET.get("page"))
        query = request.GET.copy()
        query.pop("page", None)
        return render(request, "accounts/audit_log.html", {
            "form": form, "page": page, "query": query.urlencode(),
            "verbs": selectors.audit_verbs(organization=request.organization),
        })

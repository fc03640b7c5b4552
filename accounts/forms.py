from django import forms

from accounts.capabilities import Role
from accounts.models import ApiKeyScope


class OrganizationForm(forms.Form):
    name = forms.CharField(max_length=120, label="Organisation name",
                           widget=forms.TextInput(attrs={"placeholder": "e.g. St Mary's Radiology", "autofocus": True}))


class InvitationForm(forms.Form):
    email = forms.EmailField(label="E-mail address")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100, label="Key name",
                           widget=forms.TextInput(attrs={"placeholder": "e.g. PACS bridge"}))
    scope = forms.ChoiceField(choices=ApiKeyScope.choices, initial=ApiKeyScope.READ)


class AuditFilterForm(forms.Form):
    verb = forms.CharField(required=False, label="Action")
    actor = forms.CharField(required=False, label="Who")
    since = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))

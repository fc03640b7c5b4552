"""Roles and what each may do: the one place capabilities are decided."""

from enum import StrEnum

from django.db import models


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    CLINICIAN = "clinician", "Clinician"
    ANALYST = "analyst", "Analyst"
    BILLING = "billing", "Billing"
    VIEWER = "viewer", "Viewer"


class Capability(StrEnum):
    ORG_VIEW = "org.view"
    MEMBERS_MANAGE = "members.manage"
    API_KEYS_MANAGE = "api_keys.manage"
    AUDIT_VIEW = "audit.view"
    BILLING_VIEW = "billing.view"
    BILLING_MANAGE = "billing.manage"
    IMAGING_VIEW = "imaging.view"
    IMAGING_ANALYZE = "imaging.analyze"
    IMAGING_FEEDBACK = "imaging.feedback"
    SENTIMENT_VIEW = "sentiment.view"
    SENTIMENT_INGEST = "sentiment.ingest"
    SENTIMENT_MANAGE = "sentiment.manage"


_ALL = frozenset(Capability)
_READ = frozenset({Capability.ORG_VIEW, Capability.IMAGING_VIEW, Capability.SENTIMENT_VIEW})

ROLE_CAPABILITIES: dict[str, frozenset[Capability]] = {
    Role.OWNER: _ALL,
    Role.ADMIN: _ALL,
    Role.CLINICIAN: _READ | {Capability.IMAGING_ANALYZE, Capability.IMAGING_FEEDBACK},
    Role.ANALYST: _READ | {Capability.SENTIMENT_INGEST, Capability.SENTIMENT_MANAGE},
    Role.BILLING: frozenset({Capability.ORG_VIEW, Capability.BILLING_VIEW, Capability.BILLING_MANAGE}),
    Role.VIEWER: _READ,
}

# API keys act for the organisation on product data only; organisation administration stays in the browser.
API_KEY_CAPABILITIES: dict[str, frozenset[Capability]] = {
    "read": _READ | {Capability.BILLING_VIEW},
    "write": _READ | {Capability.BILLING_VIEW, Capability.IMAGING_ANALYZE, Capability.IMAGING_FEEDBACK,
                      Capability.SENTIMENT_INGEST, Capability.SENTIMENT_MANAGE},
}

# Roles an admin may hand out; only owners create owners.
ROLES_ASSIGNABLE_BY: dict[str, frozenset[str]] = {
    Role.OWNER: frozenset(Role.values),
    Role.ADMIN: frozenset(Role.values) - {Role.OWNER},
}


def role_has(role: str | None, capability: Capability) -> bool:
    return role is not None and capability in ROLE_CAPABILITIES.get(role, frozenset())


def api_key_has(scope: str, capability: Capability) -> bool:
    return capability in API_KEY_CAPABILITIES.get(scope, frozenset())

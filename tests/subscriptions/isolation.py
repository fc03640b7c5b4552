"""Subscriptions has no id-taking routes: every billing URL acts on the request's own organisation, and the
webhook is authenticated by Stripe's signature (see tests/test_tenant_isolation.py)."""

OBJECT_ROUTES: dict = {}

"""Walks every URL pattern that takes an object id and proves organisation A gets 404 for organisation B's
objects, over the web and the API. Each app lists its id-taking routes in tests/<app>/isolation.py as
OBJECT_ROUTES = {"namespace:name": make(org) -> url kwargs}; a new route missing from those lists fails here."""

from __future__ import annotations

import importlib

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.test import APIClient

APPS = ("accounts", "imaging", "sentiment", "subscriptions")
# Kwargs that carry a secret token or a public slug rather than an object id.
NOT_OBJECT_IDS = {"token", "uidb36", "key", "format"}


def _routes():
    routes = {}
    for app in APPS:
        try:
            module = importlib.import_module(f"tests.{app}.isolation")
        except ModuleNotFoundError:
            continue
        routes.update(module.OBJECT_ROUTES)
    return routes


def _id_patterns(resolver=None, namespace=""):
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            ns = entry.namespace or ""
            full = f"{namespace}:{ns}".strip(":") if ns else namespace
            yield from _id_patterns(entry, full)
        elif isinstance(entry, URLPattern) and entry.name:
            converters = getattr(entry.pattern, "converters", {})
            ids = [k for k in converters if k not in NOT_OBJECT_IDS]
            if ids:
                yield (f"{namespace}:{entry.name}" if namespace else entry.name), ids


def _project_patterns():
    return {name: ids for name, ids in _id_patterns() if name.split(":")[0].split("_")[0] in APPS}


def test_every_id_taking_route_is_covered():
    missing = sorted(set(_project_patterns()) - set(_routes()))
    assert not missing, (f"Add these routes to tests/<app>/isolation.py OBJECT_ROUTES so tenant isolation is "
                         f"proven for them: {missing}")


@pytest.mark.parametrize("route", sorted(_routes()))
def test_other_organisations_objects_are_404(route, org, owner, other_org, other_owner, api_key_for):
    kwargs = _routes()[route](other_org)
    url = reverse(route, kwargs=kwargs)
    web = APIClient()
    web.force_login(owner)
    codes = {method: getattr(web, method)(url).status_code for method in ("get", "post", "put", "patch", "delete")}
    assert 404 in codes.values(), f"{route}: expected 404 for another organisation's object, got {codes}"
    assert set(codes.values()) <= {404, 405}, f"{route}: leaked through {codes}"
    if route.split(":")[0].endswith("_api"):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key_for(org, scope='write')}")
        codes = {m: getattr(client, m)(url).status_code for m in ("get", "post", "put", "patch", "delete")}
        assert 404 in codes.values() and set(codes.values()) <= {404, 405}, f"{route} via API key: {codes}"
    # The same request by the owning organisation is not a 404: the route really resolves that object.
    mine = APIClient()
    mine.force_login(other_owner)
    own_codes = {m: getattr(mine, m)(url).status_code for m in ("get", "post")}
    assert any(code not in (404, 405) for code in own_codes.values()), f"{route}: owner also gets {own_codes}"


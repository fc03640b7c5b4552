"""The safety net: tenant data cannot be queried without an organisation scope."""

import subprocess
import sys

import pytest
from django_scopes import ScopeError, scope

from accounts.models import ApiKey
from accounts.services import api_key_create


@pytest.mark.django_db
@pytest.mark.no_scopes_disabled
def test_unscoped_query_on_tenant_data_fails_loudly(org, owner, other_org, other_owner):
    api_key_create(organization=org, created_by=owner, name="a", scope="read")
    api_key_create(organization=other_org, created_by=other_owner, name="b", scope="read")
    with pytest.raises(ScopeError):
        list(ApiKey.objects.all())
    with scope(organization=org):
        assert [k.name for k in ApiKey.objects.all()] == ["a"]
    with scope(organization=[]):
        assert list(ApiKey.objects.all()) == []


def test_celery_configuration():
    from config.celery import app

    conf = app.conf
    assert conf.task_serializer == "json" and conf.accept_content == ["json"]
    assert conf.task_acks_late and conf.task_reject_on_worker_lost and conf.worker_prefetch_multiplier == 1
    assert {q.name for q in conf.task_queues} == {"default", "gpu"}
    assert 0 < conf.task_soft_time_limit < conf.task_time_limit
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit


def test_web_process_and_worker_parent_never_import_torch():
    """Loading every URL, view, API and task module must not pull in torch/transformers (models load in the
    worker's child processes, lazily)."""
    code = (
        "import django, importlib, sys; django.setup();"
        "from django.urls import get_resolver; get_resolver().url_patterns;"
        "import config.celery;"
        "[importlib.import_module(m) for m in ('imaging.tasks', 'sentiment.tasks', 'subscriptions.tasks')"
        " if importlib.util.find_spec(m)];"
        "bad = [m for m in ('torch', 'transformers', 'torchvision', 'captum', 'stripe') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={"DJANGO_SETTINGS_MODULE": "config.settings.test", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stdout + proc.stderr

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.management import call_command
from rest_framework.test import APIClient

from inference import engine, pipeline, retrieval


@pytest.fixture(autouse=True)
def _isolated(settings, tmp_path):
    """No test loads the real model, and each starts with empty caches and a fresh engine."""
    settings.MEDBOT_LOAD_MODEL = False
    settings.MEDBOT_ADAPTER = ""
    settings.MEDBOT_MODEL_CACHE = tmp_path / "model-cache"
    settings.MEDBOT_ADAPTER_DIR = tmp_path / "adapters"
    settings.MEDBOT_RATE_LIMIT = "1000/m"
    settings.SECURE_SSL_REDIRECT = False  # the test client speaks plain http
    cache.clear()
    engine.get_manager().reset()
    pipeline.curated.__init__()
    retrieval.rule_index.__init__()
    yield
    engine.get_manager().reset()
    cache.clear()


@pytest.fixture
def curated_data(db):
    call_command("load_curated_data", verbosity=0)


@pytest.fixture
def alice(db) -> User:
    return User.objects.create_user("alice", password="alice-password-1")


@pytest.fixture
def bob(db) -> User:
    return User.objects.create_user("bob", password="bob-password-1")


@pytest.fixture
def charlie(db) -> User:
    return User.objects.create_user("charlie", password="charlie-password-1")


@pytest.fixture
def client_for():
    """An API client logged in as the given user (session authentication, CSRF enforced)."""

    def make(user: User | None = None, csrf: bool = False) -> APIClient:
        client = APIClient(enforce_csrf_checks=csrf)
        if user is not None:
            client.force_login(user)
        return client

    return make


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory) -> Path:
    from tests.tiny_model import build_tiny_gpt2

    return build_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture
def keep_db_connection():
    """Calls that bypass the test client (raw WSGI, closing a streamed response by hand) fire
    request_finished, whose close_old_connections would close the test's transaction. The test
    client disconnects it the same way."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)

from __future__ import annotations

import threading
from types import SimpleNamespace
from unittest import mock

from django.db import OperationalError

from inference import engine


def test_live_answers_without_touching_anything(client):
    response = client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_reports_database_cache_and_engine(client, db):
    response = client.get("/health/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["checks"] == {"database": True, "cache": "ok"}
    assert body["engine"] == {"state": "off", "adapter_version": None, "load_seconds": None}
    assert response["Cache-Control"].startswith("max-age=0")


def test_ready_shows_a_failed_engine_without_its_error_or_model_path(client, db, settings, tmp_path, caplog):
    settings.MEDBOT_LOAD_MODEL = True
    settings.MEDBOT_BASE_MODEL = str(tmp_path / "secret-model-folder")
    engine.get_manager().start(wait=True)
    response = client.get("/health/ready")
    assert response.status_code == 200  # the rules answer meanwhile
    assert response.json()["engine"] == {"state": "failed", "adapter_version": None, "load_seconds": None}
    assert "secret-model-folder" not in response.content.decode()
    assert "secret-model-folder" in caplog.text  # the details are in the log


def test_ready_reports_loading_while_the_engine_loads(client, db, settings):
    settings.MEDBOT_LOAD_MODEL = True
    release = threading.Event()

    def slow_build(*args):
        release.wait(5)
        return SimpleNamespace(version="base")

    with mock.patch("inference.engine.manager.build_engine", slow_build):
        engine.get_manager().start()
        assert client.get("/health/ready").json()["engine"]["state"] == "loading"
        release.set()
        engine.get_manager()._loading_thread.join()
    assert client.get("/health/ready").json()["engine"]["state"] == "ready"


def test_ready_is_503_when_the_database_cannot_be_reached(client, db):
    with mock.patch("django.db.backends.utils.CursorWrapper.execute", side_effect=OperationalError("down")):
        response = client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] is False


def test_ready_stays_200_with_the_cache_degraded_since_answers_still_work(client, db):
    with mock.patch("django.core.cache.cache.set", side_effect=ConnectionError("down")) as cache_set:
        first = client.get("/health/ready")
        second = client.get("/health/ready")
    assert first.status_code == second.status_code == 200
    assert first.json()["checks"]["cache"] == second.json()["checks"]["cache"] == "degraded"
    assert cache_set.call_count == 1  # the second probe is skipped during the back-off: no wait on a hung Redis


def test_health_endpoints_are_exempt_from_the_https_redirect(client, db, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/health/live").status_code == 200
    assert client.get("/").status_code == 301

from __future__ import annotations

from unittest import mock

from django.db import OperationalError


def test_live_answers_without_touching_anything(client):
    response = client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_reports_database_cache_and_engine(client, db):
    response = client.get("/health/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["checks"] == {"database": True, "cache": True}
    assert body["engine"]["state"] == "disabled"
    assert response["Cache-Control"].startswith("max-age=0")


def test_ready_is_503_when_the_database_cannot_be_reached(client, db):
    with mock.patch("django.db.backends.utils.CursorWrapper.execute", side_effect=OperationalError("down")):
        response = client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] is False


def test_ready_is_503_when_the_cache_cannot_be_reached(client, db):
    with mock.patch("django.core.cache.cache.set", side_effect=ConnectionError("down")):
        response = client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["cache"] is False


def test_health_endpoints_are_exempt_from_the_https_redirect(client, db, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/health/live").status_code == 200
    assert client.get("/").status_code == 301

"""Errors Django raises before (or around) our views: a 503 page when the database is down, and
JSON, not HTML, for API clients sent a 400 or 413 by Django itself."""

from __future__ import annotations

import json
from unittest import mock

import pytest
from django.db import OperationalError
from django.db.backends.base.base import BaseDatabaseWrapper
from django.test import Client

# Well over DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB), where Django refuses the body before the API's parser.
TWENTY_MB = 20 * 1024 * 1024


@pytest.fixture
def visitor() -> Client:
    # Errors come back as responses, the way a browser or API client sees them.
    return Client(raise_request_exception=False)


@pytest.fixture
def database_down():
    with mock.patch.object(BaseDatabaseWrapper, "cursor", side_effect=OperationalError("could not connect to server")):
        yield


@pytest.mark.django_db
def test_the_chat_page_is_a_503_page_when_the_database_is_down(visitor, database_down):
    response = visitor.get("/")
    assert response.status_code == 503
    assert response["Content-Type"].startswith("text/html")
    assert response["Retry-After"]
    page = response.content.decode()
    assert "MedBot is briefly unavailable" in page and 'class="card status-card"' in page
    assert "could not connect" not in page  # the error itself stays in the log


@pytest.mark.django_db
def test_other_server_errors_are_still_a_500_page(visitor):
    with mock.patch("chat.views.current_disclaimer", side_effect=RuntimeError("boom")):
        response = visitor.get("/")
    assert response.status_code == 500
    assert "Something went wrong" in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/ask", "/ask"])
def test_a_body_over_the_upload_limit_is_a_json_413_under_the_api(visitor, path):
    body = json.dumps({"question": "x" * TWENTY_MB})
    response = visitor.post(path, data=body, content_type="application/json")
    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "The request body is too large."}


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/ask", "/api/v1/conversations/", "/ask"])
def test_a_host_not_in_allowed_hosts_is_a_json_400_under_the_api(visitor, path):
    response = visitor.get(path, HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Bad request."}


@pytest.mark.django_db
def test_a_host_not_in_allowed_hosts_is_a_400_page_in_the_site_look_elsewhere(visitor):
    response = visitor.get("/", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
    assert 'class="card status-card"' in response.content.decode()
    assert "evil.example" not in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path", ["/accounts/password_reset/", "/accounts/password_reset/done/", "/accounts/reset/MQ/set-password/"]
)
def test_password_reset_pages_are_not_found_since_no_email_is_sent(visitor, path):
    response = visitor.get(path)
    assert response.status_code == 404
    assert "Page not found" in response.content.decode()


@pytest.mark.django_db
def test_the_account_pages_medbot_uses_are_still_there(visitor, alice):
    assert visitor.get("/accounts/login/").status_code == 200
    visitor.force_login(alice)
    assert visitor.get("/accounts/password_change/").status_code == 200
    assert visitor.get("/accounts/password_change/done/").status_code == 200
    assert visitor.post("/accounts/logout/").status_code == 302


@pytest.mark.django_db
def test_a_bad_host_header_is_logged_in_one_line_without_a_traceback(visitor):
    # Each bot that probes the server by its IP address wrote a 40-line traceback.
    import io
    import logging

    from medbot_site.log_filters import WithoutTraceback

    handlers = logging.getLogger("django.security.DisallowedHost").handlers  # with pytest's own
    (handler,) = [h for h in handlers if any(isinstance(f, WithoutTraceback) for f in h.filters)]
    stream = io.StringIO()
    previous = handler.setStream(stream)
    try:
        visitor.get("/", HTTP_HOST="evil.example")
    finally:
        handler.setStream(previous)
    logged = stream.getvalue()
    assert "Invalid HTTP_HOST header" in logged
    assert "Traceback" not in logged and len(logged.strip().splitlines()) == 1

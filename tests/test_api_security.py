"""CSRF for session clients (anonymous too), token auth for scripts, and rate limits."""

from __future__ import annotations

import os

import pytest
from django.core.cache import caches
from django.test import Client
from rest_framework.authtoken.models import Token

from chat.models import Conversation, Message


def csrf_client() -> Client:
    client = Client(enforce_csrf_checks=True)
    client.get("/")  # the page sets the CSRF cookie and the anonymous session
    return client


def test_anonymous_session_clients_must_pass_csrf(curated_data):
    client = csrf_client()
    response = client.post("/api/v1/ask", {"question": "asthma?"}, content_type="application/json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert not Message.objects.exists()
    token = client.cookies["csrftoken"].value
    ok = client.post("/api/v1/ask", {"question": "asthma?"}, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert ok.status_code == 200


def test_logged_in_session_clients_must_pass_csrf(curated_data, alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post("/api/v1/conversations/", {}, content_type="application/json")
    assert response.status_code == 403


def test_scripts_with_a_token_need_no_csrf(curated_data, alice):
    token = Token.objects.create(user=alice)
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        "/api/v1/ask",
        {"question": "What are the symptoms of asthma?"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Token {token.key}",
    )
    assert response.status_code == 200
    assert Message.objects.filter(conversation__owner=alice).count() == 2


def test_a_wrong_token_is_a_401(curated_data):
    response = Client().post(
        "/api/v1/ask", {"question": "asthma"}, content_type="application/json", HTTP_AUTHORIZATION="Token nope"
    )
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


def test_a_wrong_token_does_not_fall_back_to_the_session(curated_data, alice):
    """Before: any Authorization header skipped CSRF, and a bad token fell back to the cookie."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post(
        "/api/v1/conversations/", {}, content_type="application/json", HTTP_AUTHORIZATION="Token forged"
    )
    assert response.status_code == 401
    assert not Conversation.objects.exists()


@pytest.mark.parametrize("header", ["Bearer abc", "Basic YWxpY2U6eA==", "Token"])
def test_an_authorization_header_that_is_not_a_valid_token_does_not_skip_csrf(curated_data, header):
    client = csrf_client()
    response = client.post(
        "/api/v1/ask", {"question": "asthma?"}, content_type="application/json", HTTP_AUTHORIZATION=header
    )
    assert response.status_code in (401, 403)
    assert not Message.objects.exists()


def test_a_valid_token_beside_a_session_cookie_needs_no_csrf(curated_data, alice, bob):
    """Token authentication succeeded: the request is the token's user, whatever the cookie says."""
    token = Token.objects.create(user=alice)
    client = Client(enforce_csrf_checks=True)
    client.force_login(bob)
    response = client.post(
        "/api/v1/conversations/", {}, content_type="application/json", HTTP_AUTHORIZATION=f"Token {token.key}"
    )
    assert response.status_code == 201
    assert Conversation.objects.get().owner == alice


def test_deeply_nested_json_is_a_400_not_a_500(curated_data, client_for, alice):
    client = client_for(alice)
    client.raise_request_exception = False
    deep = "[" * 30_000 + "]" * 30_000  # under the size limit: refused for its depth
    for body in (deep, '{"question": ' + deep + "}", '{"question": "x", "a": ' + "[" * 40 + "]" * 40 + "}"):
        response = client.post("/api/v1/ask", body, content_type="application/json")
        assert response.status_code == 400
        assert "nested deeper than" in response.json()["detail"]
    # The attack as reported, 100k levels, is over the size limit before its depth is counted.
    response = client.post("/api/v1/ask", "[" * 100_000 + "]" * 100_000, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["detail"]
    assert not Message.objects.exists()


def test_brackets_inside_strings_do_not_count_as_nesting(curated_data, client_for, alice):
    response = client_for(alice).post(
        "/api/v1/ask",
        '{"question": "asthma [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[ \\" ?"}',
        content_type="application/json",
    )
    assert response.status_code == 200


def test_an_unclosed_string_of_escaped_quotes_is_refused_at_once(db):
    """64 KB of escaped quotes in a string that never closes made the old depth scan rescan from
    every quote (17 s of a worker, GIL held). The scan is linear now: this counts regex steps by
    proxy, comparing a body 8 times larger with a small one; quadratic would be ~64 times."""
    import time

    from chat.parsers import nesting_depth

    def seconds(body: bytes) -> float:
        started = time.perf_counter()
        for _ in range(20):
            nesting_depth(body)
        return time.perf_counter() - started

    small, large = b'"' + b'\\"' * 4000, b'"' + b'\\"' * 32000
    assert nesting_depth(large) == 0
    assert seconds(large) < 20 * seconds(small) + 0.05


def test_an_unclosed_string_in_the_body_is_a_400(curated_data, client):
    response = client.post("/api/v1/ask", b'"' + b'\\"' * 32000, content_type="application/json")
    assert response.status_code == 400 and response.json()["detail"].startswith("JSON parse error")


def test_an_oversized_json_body_is_refused(curated_data, client_for, alice, settings):
    settings.MEDBOT_MAX_JSON_BYTES = 4096
    response = client_for(alice).post("/api/v1/ask", {"question": "asthma?", "padding": "x" * 5000}, format="json")
    assert response.status_code == 413
    assert "larger than 4096 bytes" in response.json()["detail"]


def test_asking_is_rate_limited_with_retry_after(curated_data, client_for, alice, bob, settings):
    settings.MEDBOT_RATE_LIMIT = "3/d"
    settings.MEDBOT_YOUNG_ACCOUNT_HOURS = 0  # established accounts: limited per account only
    client = client_for(alice)
    codes = [client.post("/api/v1/ask", {"question": "asthma?"}).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    limited = client.post("/api/v1/ask", {"question": "asthma?"})
    assert limited.status_code == 429
    assert 1 <= int(limited["Retry-After"]) <= 24 * 3600  # within the day-long window (no mid-test expiry)
    assert "Too many questions" in limited.json()["detail"]
    # Limits are per account: bob is unaffected.
    assert client_for(bob).post("/api/v1/ask", {"question": "asthma?"}).status_code == 200


def test_the_limit_covers_every_ask_endpoint_together(curated_data, client_for, alice, settings):
    settings.MEDBOT_RATE_LIMIT = "2/d"
    client = client_for(alice)
    conversation = client.post("/api/v1/ask", {"question": "asthma?"}).json()["conversation"]
    assert client.post(f"/api/v1/conversations/{conversation}/messages/", {"content": "more?"}).status_code == 201
    assert client.post("/ask", {"question": "asthma?"}).status_code == 429


def test_anonymous_clients_are_limited_per_address_even_with_fresh_sessions(curated_data, settings):
    settings.MEDBOT_RATE_LIMIT = "2/d"
    ask = {"data": {"question": "asthma?"}, "content_type": "application/json"}
    assert [Client(REMOTE_ADDR="10.0.0.1").post("/ask", **ask).status_code for _ in range(3)] == [200, 200, 429]
    assert Client(REMOTE_ADDR="10.0.0.2").post("/ask", **ask).status_code == 200


def test_the_trusted_proxy_header_names_the_client(curated_data, settings):
    settings.MEDBOT_RATE_LIMIT = "1/d"
    settings.MEDBOT_TRUSTED_PROXY_HEADER = "HTTP_X_FORWARDED_FOR"
    ask = {"data": {"question": "asthma?"}, "content_type": "application/json", "REMOTE_ADDR": "127.0.0.1"}
    assert Client().post("/ask", HTTP_X_FORWARDED_FOR="203.0.113.5", **ask).status_code == 200
    assert Client().post("/ask", HTTP_X_FORWARDED_FOR="203.0.113.5", **ask).status_code == 429
    assert Client().post("/ask", HTTP_X_FORWARDED_FOR="203.0.113.6", **ask).status_code == 200
    # A forged entry to the left of what our proxy appended does not make a new client.
    assert Client().post("/ask", HTTP_X_FORWARDED_FOR="198.51.100.9, 203.0.113.6", **ask).status_code == 429


def test_an_unreachable_rate_limit_store_fails_open_fast_and_logs_once(
    curated_data, client_for, alice, settings, monkeypatch, caplog
):
    """A hung Redis: the first call pays the socket timeout, the next ones skip the cache."""
    settings.MEDBOT_RATE_LIMIT = "1/d"
    calls = []

    def hung(*args, **kwargs):
        calls.append(1)
        raise TimeoutError("Timeout reading from socket")

    monkeypatch.setattr("chat.ratelimits.get_usage", hung)
    client = client_for(alice)
    assert [client.post("/api/v1/ask", {"question": "asthma?"}).status_code for _ in range(3)] == [200, 200, 200]
    assert len(calls) == 1
    warnings = [r for r in caplog.records if r.name == "medbot_site.cache_guard"]
    assert len(warnings) == 1
    assert "skipping the cache" in warnings[0].getMessage()
    assert warnings[0].exc_info is None  # one line, not a traceback per hit


def test_rate_limited_requests_save_nothing(curated_data, client_for, alice, settings):
    settings.MEDBOT_RATE_LIMIT = "1/d"
    client = client_for(alice)
    client.post("/api/v1/ask", {"question": "asthma?"})
    client.post("/api/v1/ask", {"question": "second"})
    assert not Message.objects.filter(content="second").exists()


@pytest.mark.services
@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="runs in the PostgreSQL + Redis pass of CI")
def test_two_separate_cache_clients_share_one_limit(curated_data, client_for, alice, settings, monkeypatch):
    """Two workers = two processes with their own Redis connections; the count lives in Redis."""
    settings.MEDBOT_RATE_LIMIT = "4/d"
    worker_a = caches.create_connection("default")
    worker_b = caches.create_connection("default")
    assert worker_a is not worker_b
    assert worker_a.client is not worker_b.client  # separate clients and connection pools
    client = client_for(alice)
    codes = []
    for worker in (worker_a, worker_b, worker_a, worker_b, worker_a):
        monkeypatch.setattr("django_ratelimit.core.caches", {"default": worker})
        codes.append(client.post("/api/v1/ask", {"question": "asthma?"}).status_code)
    assert codes == [200, 200, 200, 200, 429]


def test_pages_name_their_own_icon_so_browsers_do_not_ask_for_a_missing_favicon(client, curated_data):
    from django.contrib.staticfiles import finders

    page = client.get("/").content.decode()
    assert 'rel="icon"' in page and "medbot/favicon" in page
    assert finders.find("medbot/favicon.svg")

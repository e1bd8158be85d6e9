"""Limits on sign-up, log-in, young accounts, and writes that cost a row; and a hung cache that
is skipped instead of waited on."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.contrib.auth import forms as auth_forms
from django.contrib.auth.models import User
from django.contrib.auth.signals import user_login_failed
from django.contrib.sessions.models import Session
from django.test import Client, RequestFactory
from django.utils import timezone

from chat import ratelimits
from chat.forms import ThrottledAuthenticationForm
from chat.models import Conversation, Feedback, Message
from medbot_site import cache_guard

ASK = {"data": {"question": "asthma?"}, "content_type": "application/json"}


@pytest.fixture(autouse=True)
def _fast_passwords(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def sign_up(address: str, username: str) -> int:
    password = "a-long-unusual-passphrase-7"
    form = {"username": username, "password1": password, "password2": password}
    return Client(REMOTE_ADDR=address).post("/accounts/signup/", form).status_code


def log_in(address: str, username: str, password: str, path: str = "/accounts/login/") -> Client:
    client = Client(REMOTE_ADDR=address)
    client.response = client.post(path, {"username": username, "password": password})
    return client


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


# --- sign-up and log-in -------------------------------------------------------------------------


def test_sign_ups_are_limited_per_address(db, settings):
    settings.MEDBOT_SIGNUP_RATE = "2/h"
    assert [sign_up("10.0.0.1", name) for name in ("ann", "ben", "cat")] == [302, 302, 429]
    assert not User.objects.filter(username="cat").exists()
    assert sign_up("10.0.0.2", "cat") == 302


def test_a_refused_sign_up_says_why_and_when_to_retry(db, settings):
    settings.MEDBOT_SIGNUP_RATE = "1/h"
    sign_up("10.0.0.1", "ann")
    response = Client(REMOTE_ADDR="10.0.0.1").post("/accounts/signup/", {"username": "ben"})
    assert response.status_code == 429
    assert "Too many new accounts from your network" in response.content.decode()
    assert int(response["Retry-After"]) > 0


def test_after_too_many_wrong_passwords_the_address_is_refused_even_the_right_one(alice, settings):
    settings.MEDBOT_LOGIN_FAILURES_PER_ADDRESS = "5/15m"
    wrong = [log_in("10.0.0.1", "alice", f"guess-{n}").response.status_code for n in range(5)]
    assert wrong == [200] * 5
    client = log_in("10.0.0.1", "alice", "alice-password-1")
    assert client.response.status_code == 429
    assert "Too many failed log-in attempts" in client.response.content.decode()
    assert not logged_in(client)
    # Another address is not locked out.
    assert logged_in(log_in("10.0.0.2", "alice", "alice-password-1"))


def test_an_account_is_protected_from_guessing_spread_over_many_addresses(alice, settings):
    settings.MEDBOT_LOGIN_FAILURES_PER_ACCOUNT = "5/h"
    for n in range(5):
        log_in(f"10.0.1.{n}", "Alice", "wrong")  # the name as typed, in any case
    assert not logged_in(log_in("10.0.2.1", "alice", "alice-password-1"))
    assert log_in("10.0.2.1", "bob", "whatever").response.status_code == 200  # other accounts unaffected


def test_the_admin_log_in_obeys_the_same_limits(alice, settings):
    alice.is_staff = True
    alice.save()
    settings.MEDBOT_LOGIN_FAILURES_PER_ADDRESS = "3/15m"
    for _ in range(3):
        log_in("10.0.0.1", "alice", "wrong", path="/admin/login/")
    client = log_in("10.0.0.1", "alice", "alice-password-1", path="/admin/login/")
    assert not logged_in(client)
    assert "Too many failed log-in attempts" in client.response.content.decode()


def test_successful_log_ins_do_not_count_towards_the_failed_login_limit(alice, settings):
    settings.MEDBOT_LOGIN_FAILURES_PER_ADDRESS = "2/15m"
    log_in("10.0.0.1", "alice", "wrong")
    assert all(logged_in(log_in("10.0.0.1", "alice", "alice-password-1")) for _ in range(4))
    log_in("10.0.0.1", "alice", "wrong")
    assert log_in("10.0.0.1", "alice", "alice-password-1").response.status_code == 429  # two failures


def test_wrong_passwords_sent_all_at_once_get_no_more_guesses_than_the_limit(settings, monkeypatch):
    """The reported race: the limit was checked before the password and the failure counted
    after it, so N attempts arriving together all passed the check before any was counted.
    Here every attempt that reaches the password check waits until all N have been let through
    (or half a second): with check-then-count all ten get there, with count-then-check three."""
    settings.MEDBOT_LOGIN_FAILURES_PER_ADDRESS = "3/15m"
    attempts = 10
    password_checks: list[str] = []
    everyone_through = threading.Barrier(attempts, timeout=0.5)

    def slow_wrong_password(request, **credentials):
        password_checks.append(credentials["password"])
        with contextlib.suppress(threading.BrokenBarrierError):
            everyone_through.wait()
        user_login_failed.send(sender=__name__, credentials=credentials, request=request)
        return None

    monkeypatch.setattr(auth_forms, "authenticate", slow_wrong_password)

    def attempt(number: int) -> int | None:
        request = RequestFactory().post("/accounts/login/", REMOTE_ADDR="10.0.0.1")
        form = ThrottledAuthenticationForm(request, data={"username": "alice", "password": f"guess-{number}"})
        assert not form.is_valid()
        return form.throttled_for

    with ThreadPoolExecutor(max_workers=attempts) as pool:
        refused = [wait for wait in pool.map(attempt, range(attempts)) if wait is not None]

    assert len(password_checks) == 3
    assert len(refused) == 7


def test_young_accounts_count_their_questions_against_their_address(curated_data, settings):
    """The reported hole: a new account per question dodged a per-account limit."""
    settings.MEDBOT_RATE_LIMIT = "2/d"
    codes = []
    for name in ("ann", "ben", "cat"):
        client = Client(REMOTE_ADDR="10.0.0.1")
        client.force_login(User.objects.create_user(name))
        codes.append(client.post("/api/v1/ask", **ASK).status_code)
    assert codes == [200, 200, 429]
    # An established account on the same address is limited on its own count only.
    old = User.objects.create_user("olga", date_joined=timezone.now() - timedelta(days=30))
    client = Client(REMOTE_ADDR="10.0.0.1")
    client.force_login(old)
    assert client.post("/api/v1/ask", **ASK).status_code == 200


def test_asks_without_a_session_cookie_count_against_the_same_per_address_limit(curated_data, settings):
    """Scripts that keep no cookies start afresh with every question: the ask limit is per
    address, so they share the count of the visitors with a session on that address."""
    settings.MEDBOT_RATE_LIMIT = "3/d"
    browser = Client(REMOTE_ADDR="10.0.0.1")
    assert browser.post("/api/v1/ask", **ASK).status_code == 200
    assert "sessionid" in browser.cookies

    codes = []
    for path in ("/api/v1/ask", "/ask", "/api/v1/ask"):
        script = Client(REMOTE_ADDR="10.0.0.1")  # a new client each time: no cookie is sent
        codes.append(script.post(path, **ASK).status_code)
    assert codes == [200, 200, 429]
    assert browser.post("/api/v1/ask", **ASK).status_code == 429  # the session holder is over it too
    assert Client(REMOTE_ADDR="10.0.0.2").post("/api/v1/ask", **ASK).status_code == 200


# --- writes that cost a row ---------------------------------------------------------------------


def test_creating_conversations_is_limited(client_for, alice, settings):
    settings.MEDBOT_CONVERSATION_RATE = "2/d"
    client = client_for(alice)
    codes = [client.post("/api/v1/conversations/", {}, format="json").status_code for _ in range(3)]
    assert codes == [201, 201, 429]
    assert Conversation.objects.count() == 2
    assert "Too many new conversations" in client.post("/api/v1/conversations/", {}, format="json").json()["detail"]


def test_anonymous_conversation_creation_is_limited_per_address(db, settings):
    settings.MEDBOT_CONVERSATION_RATE = "1/d"
    first = Client(REMOTE_ADDR="10.0.0.1").post("/api/v1/conversations/", {}, content_type="application/json")
    fresh_session = Client(REMOTE_ADDR="10.0.0.1").post("/api/v1/conversations/", {}, content_type="application/json")
    assert (first.status_code, fresh_session.status_code) == (201, 429)


def test_asking_without_a_conversation_counts_as_creating_one(curated_data, client_for, alice, settings):
    """Every ask without a conversation starts one: the new-conversation limit holds there too,
    streamed or not, and on the original /ask."""
    settings.MEDBOT_CONVERSATION_RATE = "3/d"
    client = client_for(alice)
    question = {"question": "How do I look after a cold?"}
    codes = [
        client.post("/api/v1/ask", question, format="json").status_code,
        client.post("/api/v1/ask", question, format="json", HTTP_ACCEPT="text/event-stream").status_code,
        client.post("/ask", question, format="json").status_code,
        client.post("/api/v1/ask", question, format="json").status_code,
    ]
    assert codes == [200, 200, 200, 429]
    assert Conversation.objects.count() == 3
    # Asking in a conversation one has is not creating one.
    conversation = Conversation.objects.first()
    again = client.post("/api/v1/ask", {**question, "conversation": conversation.pk}, format="json")
    assert again.status_code == 200


def test_a_busy_conversations_409s_do_not_use_up_the_question_limit(curated_data, client_for, alice, settings):
    """Right after Stop the chat retries a 409 about once a second: those are not questions asked."""
    from django.utils import timezone

    settings.MEDBOT_RATE_LIMIT = "2/d"
    conversation = Conversation.objects.create(owner=alice)
    client = client_for(alice)
    path = f"/api/v1/conversations/{conversation.pk}/messages/"
    Conversation.objects.filter(pk=conversation.pk).update(answering_since=timezone.now())
    busy = [client.post(path, {"content": "How do I look after a cold?"}, format="json").status_code for _ in range(5)]
    ask = {"question": "How do I look after a cold?", "conversation": conversation.pk}
    assert busy == [409] * 5 and client.post("/api/v1/ask", ask, format="json").status_code == 409
    Conversation.objects.filter(pk=conversation.pk).update(answering_since=None)
    codes = [client.post(path, {"content": "How do I look after a cold?"}, format="json").status_code for _ in range(3)]
    assert codes == [201, 201, 429]


def test_rating_is_limited(client_for, alice, settings):
    settings.MEDBOT_FEEDBACK_RATE = "2/d"
    conversation = Conversation.objects.create(owner=alice)
    question = Message.objects.create(conversation=conversation, role="user", content="asthma?")
    answer = Message.objects.create(conversation=conversation, role="assistant", content="A.", reply_to=question)
    client = client_for(alice)
    codes = [client.post(f"/api/v1/messages/{answer.pk}/feedback", {"rating": r}).status_code for r in (1, -1, 1)]
    assert codes == [201, 200, 429]
    assert Feedback.objects.get().rating == -1


def test_page_loads_make_sessions_only_under_the_per_address_limit(curated_data, settings):
    settings.MEDBOT_NEW_SESSION_RATE = "2/d"
    visitors = [Client(REMOTE_ADDR="10.0.0.1") for _ in range(3)]
    assert [visitor.get("/").status_code for visitor in visitors] == [200, 200, 200]
    assert Session.objects.count() == 2
    assert "sessionid" not in visitors[2].cookies
    # Returning visitors are not new sessions, and the page still works past the limit...
    assert visitors[0].get("/").status_code == 200
    assert Session.objects.count() == 2
    # ... where the first question makes the session.
    assert visitors[2].post("/api/v1/ask", **ASK).status_code == 200
    assert "sessionid" in visitors[2].cookies


# --- a hung cache -------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class HungCache:
    def __init__(self) -> None:
        self.calls = 0
        self.hung = True

    def get(self, key: str, default: object = None) -> object:
        self.calls += 1
        if self.hung:
            raise TimeoutError("Timeout reading from socket")
        return "value"


def test_after_a_cache_failure_the_cache_is_skipped_for_the_back_off_and_logged_once(settings, monkeypatch, caplog):
    settings.MEDBOT_CACHE_BACKOFF_SECONDS = 30
    clock = Clock()
    monkeypatch.setattr(cache_guard, "time", clock)
    cache = HungCache()
    monkeypatch.setattr(cache_guard, "cache", cache)
    assert [cache_guard.safe_get("k", "miss") for _ in range(5)] == ["miss"] * 5
    assert cache.calls == 1
    assert cache_guard.degraded() == "TimeoutError: Timeout reading from socket"
    clock.now += 31  # the back-off is over: try again, still failing, log again
    cache_guard.safe_get("k")
    assert cache.calls == 2
    logs = [r.getMessage() for r in caplog.records if r.name == "medbot_site.cache_guard"]
    assert len(logs) == 2
    assert "4 calls skipped" in logs[1]

    cache.hung = False
    clock.now += 31
    assert cache_guard.safe_get("k") == "value"
    assert cache_guard.degraded() is None


@pytest.fixture
def hung_redis(settings):
    """The default cache is a TCP server that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    original = settings.CACHES
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{server.getsockname()[1]}/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.3, "SOCKET_TIMEOUT": 0.3},
        }
    }
    yield
    settings.CACHES = original  # before the shared teardown clears the cache
    server.close()


def test_a_hung_redis_costs_one_timeout_per_back_off_not_one_per_call(settings, hung_redis, caplog):
    settings.MEDBOT_RATE_LIMIT = "5/d"
    request = RequestFactory().post("/api/v1/ask", REMOTE_ADDR="10.0.0.1")
    started = time.monotonic()
    waits = [ratelimits.retry_after(request) for _ in range(10)]
    elapsed = time.monotonic() - started
    assert waits == [None] * 10  # fails open
    assert elapsed < 1.5  # one 0.3 s timeout, not ten
    warnings = [r for r in caplog.records if r.name == "medbot_site.cache_guard" and r.levelno == logging.WARNING]
    assert len(warnings) == 1

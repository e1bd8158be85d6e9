"""Headless Chromium against pytest-django's live server, for the browser chat.

One browser for the whole session (starting Chromium is the slow part); each test gets a fresh
context, so cookies, the session and localStorage never leak between tests."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test.utils import override_settings
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
from pytest_django.fixtures import Settings
from pytest_django.live_server_helper import LiveServer

from inference import engine
from inference.engine import GenerationRequest, GenerationStats

# Playwright's sync API runs an event loop in this thread; Django's ORM calls from the test
# body would otherwise be refused as "async unsafe".
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 10_000  # generous: the suite shares small CI machines; passing tests never wait this long
expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="session")
def _no_https_redirect_at_start() -> override_settings:
    """The live server speaks plain HTTP, and SecurityMiddleware reads SECURE_SSL_REDIRECT once,
    when the server builds its handler: switched off for that moment only (see live_server)."""
    overrides = override_settings(SECURE_SSL_REDIRECT=False)
    overrides.enable()
    return overrides


@pytest.fixture(scope="session")
def live_server(_no_https_redirect_at_start: override_settings, live_server: LiveServer) -> LiveServer:
    """pytest-django's live server, started without the https redirect. The setting is restored
    at once, so the rest of the suite (which checks the redirect) runs with the real settings."""
    _no_https_redirect_at_start.disable()
    return live_server


@pytest.fixture(autouse=True)
def _plain_http(settings: Settings) -> None:
    """Per browser test: cookies a plain-HTTP page can keep, and static files without the
    collectstatic manifest (which tests never build)."""
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def curated_rules(db: None) -> None:
    """The curated rules and disclaimer the chat answers from, without the training examples that
    the suite's ``curated_data`` also loads: per test, that is most of the setup time."""
    fixtures = Path(settings.BASE_DIR) / "fixtures"
    names = ("disclaimers.json", "emergency_rules.json", "fallback_rules.json")
    call_command("loaddata", *(str(fixtures / name) for name in names), verbosity=0)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: apt-get install -y chromium"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def new_page(browser: Browser, live_server: LiveServer) -> Iterator[Callable[..., Page]]:
    """Open pages in fresh browser contexts; JavaScript errors fail the test."""
    contexts: list[BrowserContext] = []
    errors: list[str] = []

    def make(width: int = 1280, height: int = 800, path: str = "/") -> Page:
        context = browser.new_context(viewport={"width": width, "height": height}, base_url=live_server.url)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on(
            "console",
            lambda message: (
                errors.append(message.text)
                if message.type == "error" and "Content Security Policy" in message.text
                else None
            ),
        )
        page.goto(path)
        return page

    yield make
    for context in contexts:
        context.close()
    assert not errors, f"errors in the page: {errors}"


@pytest.fixture
def page(new_page: Callable[..., Page]) -> Page:
    return new_page()


@dataclass
class FakeEngine:
    """Stands in for the loaded model at the engine seam and streams canned pieces. Before each
    piece whose index is in ``hold_before`` it waits until the test calls ``release()``, so a test
    can look at the page mid-answer without racing a timer."""

    pieces: list[str]
    hold_before: tuple[int, ...] = ()
    version: str = "test-adapter"
    delay: float = 0.03
    finished: threading.Event = field(default_factory=threading.Event)
    _gate: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))

    def release(self, times: int = 1) -> None:
        self._gate.release(times)

    def stream(self, request: GenerationRequest, stats: GenerationStats) -> Iterator[str]:
        try:
            for index, piece in enumerate(self.pieces):
                if index in self.hold_before and not self._gate.acquire(timeout=15):
                    raise AssertionError("the test never released the fake model")
                time.sleep(self.delay)
                stats.tokens += len(piece.split())
                yield piece
            stats.stopped_by = "eos"
        finally:
            self.finished.set()


@pytest.fixture
def fake_model(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., FakeEngine]]:
    """Install a FakeEngine where the pipeline asks for the model (the live server runs in this
    process, so the patch reaches it)."""
    installed: list[FakeEngine] = []

    def install(pieces: list[str], hold_before: tuple[int, ...] = ()) -> FakeEngine:
        fake = FakeEngine(pieces=pieces, hold_before=hold_before)
        monkeypatch.setattr(engine.get_manager(), "get", lambda: fake)
        installed.append(fake)
        return fake

    yield install
    for fake in installed:
        fake.release(len(fake.pieces))  # never leave a server thread waiting past the test

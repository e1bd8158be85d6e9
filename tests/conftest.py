from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.management import call_command
from rest_framework.test import APIClient

from inference import engine, pipeline, retrieval
from knowledge import versions
from medbot_site import cache_guard


@pytest.fixture(autouse=True)
def _isolated(settings, tmp_path):
    """No test loads the real model, and each starts with empty caches and a fresh engine."""
    settings.MEDBOT_LOAD_MODEL = False
    settings.MEDBOT_ADAPTER = ""
    settings.MEDBOT_MODEL_CACHE = tmp_path / "model-cache"
    settings.MEDBOT_ADAPTER_DIR = tmp_path / "adapters"
    settings.MEDBOT_RATE_LIMIT = "1000/m"
    # The write and log-in limits are tested on their own; elsewhere they stay out of the way.
    for name in (
        "MEDBOT_CONVERSATION_RATE",
        "MEDBOT_FEEDBACK_RATE",
        "MEDBOT_SIGNUP_RATE",
        "MEDBOT_NEW_SESSION_RATE",
        "MEDBOT_LOGIN_FAILURES_PER_ADDRESS",
        "MEDBOT_LOGIN_FAILURES_PER_ACCOUNT",
    ):
        setattr(settings, name, "1000/m")
    settings.SECURE_SSL_REDIRECT = False  # the test client speaks plain http
    cache.clear()
    cache_guard.reset()
    engine.get_manager().reset()
    pipeline.disclaimers.__init__()
    retrieval.retriever.reset()
    versions.forget_fingerprints()
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


class FakeEngine:
    """Stands in for a loaded model at the engine seam (``Generator``): streams ``pieces`` and
    reports ``tokens``/``stopped_by``; records each request it was given."""

    version = "fake-1"

    def __init__(self) -> None:
        self.pieces: list[str] = ["Asthma narrows the airways and can cause wheezing and coughing."]
        self.tokens = 12
        self.stopped_by = "eos"
        self.requests: list[object] = []

    def stream(self, request, stats=None):
        from inference.engine import GenerationStats, Stream

        stats = stats if stats is not None else GenerationStats()
        self.requests.append(request)

        def pieces():
            yield from self.pieces
            stats.tokens, stats.stopped_by = self.tokens, self.stopped_by

        return Stream(pieces(), stats)

    def generate(self, request):
        from inference.engine.types import collect

        return collect(self.stream(request))


@pytest.fixture
def fake_engine(settings, monkeypatch) -> FakeEngine:
    """A ready engine that answers with canned pieces: the pipeline's model path without a model."""
    settings.MEDBOT_LOAD_MODEL = True
    fake = FakeEngine()
    manager = engine.get_manager()
    monkeypatch.setattr(manager, "get", lambda: fake)
    monkeypatch.setattr(manager, "_state", "ready")
    return fake


class ScriptedEngine:
    """A stand-in for a loaded engine that 'generates' fixed text: the pipeline's seam, with no
    model behind it. ``stopped_by`` sets how the generation ends; ``error`` makes it raise."""

    version = "base"

    def __init__(self, text: str = "", stopped_by: str = "eos", error: Exception | None = None) -> None:
        self.text, self.stopped_by, self.error = text, stopped_by, error
        self.requests: list = []
        self.produced = 0  # words handed out before the consumer stopped reading

    def stream(self, request, stats=None):
        self.requests.append(request)
        if self.error is not None:
            raise self.error
        words = self.text.split(" ")
        for index, word in enumerate(words):
            if stats is not None:
                stats.tokens = index + 1
            self.produced = index + 1
            yield word if index == 0 else " " + word
        if stats is not None:
            stats.stopped_by = self.stopped_by


@pytest.fixture
def scripted_model(monkeypatch):
    """Install a ScriptedEngine as the ready model: ``scripted_model("text", stopped_by=...)``."""

    def install(text: str = "", **kwargs) -> ScriptedEngine:
        fake = ScriptedEngine(text, **kwargs)
        monkeypatch.setattr(engine.get_manager(), "get", lambda: fake)
        return fake

    return install


@pytest.fixture
def knowledge_base(db):
    """A small imported source, written for these tests in our own words (not MedQuAD). Request
    it after ``curated_data``: it removes the curated gout entry, which would otherwise answer
    gout questions in its place (curated entries rank with passages of the question's type)."""
    from inference.models import FallbackRule
    from knowledge.models import KnowledgeSource, Passage

    FallbackRule.objects.filter(title="Gout").delete()

    source = KnowledgeSource.objects.create(
        name="Test leaflets", publisher="Test Clinic", url="https://clinic.example/", licence="CC BY 4.0"
    )
    rows = [
        (
            "gout-1",
            "What is gout?",
            "Gout",
            "information",
            "Gout is a kind of arthritis caused by crystals of uric acid forming in a joint. It often starts in the "
            "big toe, which becomes hot, swollen and very painful. Attacks come and go over days.",
        ),
        (
            "gout-2",
            "How is gout treated?",
            "Gout",
            "treatment",
            "An attack of gout is treated with anti-inflammatory medicines such as naproxen, or with colchicine, "
            "started as early as possible. Resting and cooling the joint helps. People with frequent attacks may "
            "take allopurinol every day to lower uric acid. Drinking less alcohol and fewer sugary drinks lowers "
            "the risk of new attacks.",
        ),
        (
            "hbp-1",
            "What is high blood pressure?",
            "High Blood Pressure",
            "information",
            "High blood pressure means the force of blood against artery walls stays too high. It rarely causes "
            "symptoms, so the only way to know is to have it measured. Over years it strains the heart, kidneys "
            "and brain.",
        ),
        (
            "palp-1",
            "What are palpitations?",
            "Palpitations",
            "information",
            "Palpitations are heartbeats that suddenly become noticeable: pounding, fluttering or racing. They are "
            "usually harmless and linked to stress, caffeine or exercise.",
        ),
    ]
    for external_id, title, focus, kind, text in rows:
        Passage.objects.create(
            source=source,
            external_id=external_id,
            title=title,
            focus=focus,
            question_type=kind,
            text=text,
            url=f"https://clinic.example/{external_id}",
        )
    return source


# --- triage and the admin ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def shipped_triage():
    """The shipped concepts and red-flag rules (fixtures), compiled once, without a database."""
    from inference.triage import fixture_triage

    return fixture_triage()


def staff_in(group: str, username: str) -> User:
    """A staff user whose only permissions come from one group the migrations make."""
    from django.contrib.auth.models import Group

    user = User.objects.create_user(username, is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def curator(db) -> User:
    """Carol, a curator."""
    return staff_in("Curators", "carol")


@pytest.fixture
def auditor(db) -> User:
    """Audrey, an auditor (read-only)."""
    return staff_in("Auditors", "audrey")


@pytest.fixture
def admin_for():
    """A test client logged in as the given staff user, for the admin's real URLs."""
    from django.test import Client

    def make(user: User) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return make


# Every data migration that sets up the staff groups, in the order they run.
GROUP_MIGRATIONS = (
    ("inference.migrations.0002_groups", "make_groups"),
    ("inference.migrations.0004_curators_edit_concepts", "grant"),
    ("knowledge.migrations.0002_groups", "grant"),
    ("knowledge.migrations.0004_alias_groups", "grant"),
)


@pytest.fixture
def rebuild_groups():
    """Make the Curators and Auditors groups again as the migrations do: after a live-server
    flush, or to check that re-running the set-up restores hand-edited groups."""
    import importlib

    from django.apps import apps

    def rebuild() -> None:
        for module, function in GROUP_MIGRATIONS:
            getattr(importlib.import_module(module), function)(apps, None)

    return rebuild

"""The engine is ready with the server: the serving process starts loading at once, the chat says
so while it loads, and gunicorn's defaults leave room for one batching engine per worker."""

from __future__ import annotations

import runpy
import threading
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest

from inference import engine
from inference.apps import is_serving_process

ROOT = Path(__file__).resolve().parent.parent
LOADING_NOTE = "The AI model is starting; answers come from trusted sources meanwhile."


@pytest.mark.parametrize(
    ("argv", "environ", "serving"),
    [
        (["manage.py", "runserver"], {"RUN_MAIN": "true"}, True),  # the autoreloader's serving child
        (["manage.py", "runserver"], {}, False),  # the autoreloader's parent only watches files
        (["manage.py", "runserver", "--noreload"], {}, True),
        (["manage.py", "migrate"], {"RUN_MAIN": "true"}, False),
        (["pytest"], {}, False),
    ],
)
def test_only_the_development_servers_serving_process_loads_at_start(argv, environ, serving):
    assert is_serving_process(argv, environ) is serving


def test_the_serving_process_starts_loading_when_django_is_ready(monkeypatch):
    from django.apps import apps

    started = []
    monkeypatch.setattr("sys.argv", ["manage.py", "runserver"])
    monkeypatch.setenv("RUN_MAIN", "true")
    monkeypatch.setattr(engine.get_manager(), "start", lambda: started.append(True))
    apps.get_app_config("inference").ready()
    assert started == [True]


@pytest.fixture
def slow_load(settings):
    """An engine that takes until ``release`` is set to load."""
    settings.MEDBOT_LOAD_MODEL = True
    release = threading.Event()

    def build(*args):
        release.wait(5)
        return SimpleNamespace(version="base")

    with mock.patch("inference.engine.manager.build_engine", build):
        yield release
        release.set()
        thread = engine.get_manager()._loading_thread
        if thread is not None:
            thread.join()


def test_the_chat_says_the_model_is_starting_while_it_loads(client, db, slow_load):
    page = client.get("/").content.decode()
    assert LOADING_NOTE in page
    assert 'id="engine-note"' in page and 'id="engine-note" class="composer-hint engine-note" role="status">' in page


def test_the_chat_hides_the_note_once_ready_or_when_the_model_is_off(client, db, slow_load, settings):
    slow_load.set()
    engine.get_manager().start(wait=True)
    assert 'role="status" hidden>' in client.get("/").content.decode()
    settings.MEDBOT_LOAD_MODEL = False
    assert 'role="status" hidden>' in client.get("/").content.decode()


def gunicorn_conf(monkeypatch: pytest.MonkeyPatch, cores: int, **env: str) -> dict:
    for name in ("GUNICORN_WORKERS", "WEB_CONCURRENCY", "GUNICORN_THREADS", "MEDBOT_MAX_BATCH", "MEDBOT_BATCH_THREADS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("MEDBOT_ENGINE", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(cores)))
    return runpy.run_path(str(ROOT / "gunicorn.conf.py"))


@pytest.mark.parametrize(
    ("cores", "env", "workers", "threads"),
    [
        (2, {}, 1, 10),  # 2 batch threads fill both cores; 8 batched answers + 2 spare threads
        (8, {}, 4, 10),
        (8, {"MEDBOT_BATCH_THREADS": "1", "MEDBOT_MAX_BATCH": "4"}, 8, 6),
        (4, {"MEDBOT_ENGINE": "openai"}, 4, 10),  # no torch in the worker: one per core
        (2, {"GUNICORN_WORKERS": "3", "GUNICORN_THREADS": "5"}, 3, 5),  # explicit values win
    ],
)
def test_gunicorn_defaults_fit_one_batching_engine_per_worker(monkeypatch, cores, env, workers, threads):
    conf = gunicorn_conf(monkeypatch, cores, **env)
    assert (conf["workers"], conf["threads"]) == (workers, threads)
    if "GUNICORN_WORKERS" not in env:
        assert conf["threads"] >= conf["MAX_BATCH"]
        if env.get("MEDBOT_ENGINE") != "openai":
            assert conf["workers"] * conf["BATCH_THREADS"] <= cores

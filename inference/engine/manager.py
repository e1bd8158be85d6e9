"""This process's engine: its state, background loading, adapter swaps and readiness.

States: ``off`` (MEDBOT_LOAD_MODEL=0), ``loading`` (started, or about to be on first use),
``ready``, ``failed`` (the rules answer; a page view, or for a remote engine the next question
after a pause, tries again). The serving process starts loading as soon as it is up
(``inference.apps`` for the development server, ``post_worker_init`` under gunicorn); answers
come from the rules until the engine is ready.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.conf import settings

from inference import adapters
from inference.engine.config import EngineConfig
from inference.engine.types import FAILED, LOADING, OFF, READY, Generator

logger = logging.getLogger(__name__)

REMOTE_RETRY_SECONDS = 10.0  # a failed remote engine is probed again this often, on demand


def _adapter_check_seconds() -> float:
    # Read from the package at call time: tests shorten it with
    # monkeypatch.setattr(inference.engine, "ADAPTER_CHECK_SECONDS", 0).
    from inference import engine as package

    return float(package.ADAPTER_CHECK_SECONDS)


def build_engine(config: EngineConfig, adapter: adapters.AdapterRef | None) -> Generator:
    """The engine ``config`` asks for (imports torch only for the local one)."""
    if config.kind == "openai":
        from inference.engine.remote import RemoteEngine

        return RemoteEngine.load(config, adapter)
    from inference.engine.lora import LoraEngine

    return LoraEngine.load(config, adapter)


class EngineManager:
    """Owns this process's engine. ``get()`` never blocks on loading: it returns the ready
    engine or None (answer from the rules)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._engine: Generator | None = None
        self._started = False
        self._state = LOADING
        self._error = ""
        self._kind = ""
        self._loading_thread: threading.Thread | None = None
        self._wanted: adapters.AdapterRef | None = None
        self._checked_at = 0.0
        self._failed_at = 0.0
        self.load_seconds: float | None = None

    @property
    def state(self) -> str:
        if not settings.MEDBOT_LOAD_MODEL:
            return OFF
        return self._state

    def status(self) -> dict[str, Any]:
        """State and details for operators (the ``ask`` command, benchmarks, logs). The error
        text may hold paths: /health/ready shows only ``public_status()``."""
        engine = self._engine
        return {
            "state": self.state,
            "kind": self._kind or settings.MEDBOT_ENGINE,
            "base_model": settings.MEDBOT_BASE_MODEL,
            "adapter_version": engine.version if engine else None,
            "error": self._error or None,
            "load_seconds": round(self.load_seconds, 2) if self.load_seconds is not None else None,
        }

    def public_status(self, probe: bool = False) -> dict[str, Any]:
        """What anyone may see: the state, the adapter version and the load time. With
        ``probe`` a ready remote engine is asked whether its server still answers."""
        if probe:
            self._probe_remote()
        engine = self._engine if self.state == READY else None
        return {
            "state": self.state,
            "adapter_version": engine.version if engine else None,
            "load_seconds": round(self.load_seconds, 2) if self.load_seconds is not None else None,
        }

    def start(self, wait: bool = False) -> None:
        """Begin loading in the background (idempotent; retries after a failure); with
        ``wait=True`` block until done."""
        if not settings.MEDBOT_LOAD_MODEL:
            return
        with self._lock:
            if self._engine is None and not self._loading():
                self._started = True
                self._state = LOADING
                self._spawn(None, lookup=True)
            thread = self._loading_thread
        if wait and thread is not None:
            thread.join()

    def _loading(self) -> bool:
        return self._loading_thread is not None and self._loading_thread.is_alive()

    def _spawn(self, adapter: adapters.AdapterRef | None, lookup: bool = False) -> None:
        thread = threading.Thread(target=self._load, args=(adapter, lookup), name="medbot-engine-load", daemon=True)
        self._loading_thread = thread
        thread.start()

    def _load(self, adapter: adapters.AdapterRef | None, lookup: bool) -> None:
        started = time.monotonic()
        try:
            if lookup:  # in this thread: the serving process may start before the database is needed
                adapter = adapters.active_adapter()
                with self._lock:
                    self._wanted = adapter
                    self._checked_at = time.monotonic()
            config = EngineConfig.from_settings(adapter=adapter.version if adapter else None)
            self._kind = config.kind
            engine = build_engine(config, adapter)
        except Exception as error:
            logger.warning("Model unavailable, answering from the rules: %s", error, exc_info=True)
            with self._lock:
                self._error = str(error)[:500]
                self._failed_at = time.monotonic()
                if self._engine is None:
                    self._state = FAILED
            return
        with self._lock:
            self._engine = engine
            self._state = READY
            self._error = ""
            self.load_seconds = time.monotonic() - started
        logger.info(
            "Model ready: %s engine, %s, adapter %s, in %.1f s",
            config.kind,
            config.served_model or config.base_model if config.kind == "openai" else config.base_model,
            engine.version,
            self.load_seconds,
        )

    def _probe_remote(self) -> None:
        if self.state == FAILED and self._kind == "openai" and not self._loading():
            if time.monotonic() - self._failed_at > REMOTE_RETRY_SECONDS:
                self.start()  # in the background: this probe reports "loading" meanwhile
            return
        engine = self._engine
        probe = getattr(engine, "probe", None)
        if probe is None or self.state != READY:
            return
        if not probe():
            with self._lock:
                if self._engine is engine:
                    self._engine = None
                    self._state = FAILED
                    self._error = "remote model server failed its readiness probe"
                    self._failed_at = time.monotonic()

    def get(self) -> Generator | None:
        """The ready engine, or None while off/loading/failed. Starts loading on first use,
        retries a failed remote engine every few seconds, and notices a newly activated adapter
        (the old engine serves until the new one is ready)."""
        if not settings.MEDBOT_LOAD_MODEL:
            return None
        now = time.monotonic()
        if not self._started or (
            self._state == FAILED
            and self._kind == "openai"
            and now - self._failed_at > REMOTE_RETRY_SECONDS
            and not self._loading()
        ):
            self.start()
        if self._state == READY and now - self._checked_at > _adapter_check_seconds():
            self._checked_at = now
            wanted = adapters.active_adapter()
            with self._lock:
                if wanted != self._wanted and not self._loading():
                    logger.info("Active adapter changed to %s; reloading", wanted.version if wanted else "base")
                    self._wanted = wanted
                    self._spawn(wanted)
        return self._engine

    def reset(self) -> None:
        """Forget the engine (tests, and settings changes). Its decode thread exits once idle."""
        with self._lock:
            self._engine = None
            self._started = False
            self._state = LOADING
            self._error = ""
            self._kind = ""
            self._wanted = None
            self._failed_at = 0.0
            self.load_seconds = None


_manager: EngineManager | None = None
_manager_lock = threading.Lock()


def get_manager() -> EngineManager:
    global _manager
    if _manager is None:
        with _manager_lock:
            if _manager is None:
                _manager = EngineManager()
    return _manager


def engine_status() -> dict[str, Any]:
    return get_manager().status()

"""The per-process model engine: a base causal LM with the active LoRA adapter merged in.

One engine per worker process, created lazily behind a lock (never at import time) and loaded
in a background thread so a worker can answer from the rules while the model loads. The
engine checks for a newly activated adapter every few seconds and swaps it in without a restart.

``torch``, ``transformers`` and ``peft`` are imported inside the loader only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from django.conf import settings

from inference import adapters, registry
from inference.prompting import Turn, build_messages, render

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

DISABLED, LOADING, READY, FAILED = "disabled", "loading", "ready", "failed"
ADAPTER_CHECK_SECONDS = 3.0


class GenerationError(RuntimeError):
    """Generation failed or could not start in time; callers fall back to the rules."""


@dataclass
class GenerationRequest:
    question: str
    history: Sequence[Turn] = ()
    grounding: str | None = None
    max_new_tokens: int = 160
    temperature: float = 0.0
    timeout: float = 20.0  # seconds of wall clock for waiting and generating together
    cancel: threading.Event = field(default_factory=threading.Event)


@dataclass
class GenerationStats:
    tokens: int = 0
    stopped_by: str = ""  # "eos", "max_tokens", "timeout" or "cancelled"


class Generator(Protocol):
    """What the answer pipeline needs from a model; the LoRA engine is one implementation."""

    version: str

    def stream(self, request: GenerationRequest, stats: GenerationStats) -> Iterator[str]: ...


class LoraEngine:
    """A loaded model: ``stream`` yields text pieces; one generation runs at a time."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        base_name: str,
        adapter: adapters.AdapterRef | None,
        history_tokens: int = 384,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.base_name = base_name
        self.adapter = adapter
        self.version = adapter.version if adapter else "base"
        self.history_tokens = history_tokens
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls,
        base_name: str,
        adapter: adapters.AdapterRef | None,
        cache_root: Path,
        dtype: str = "float32",
        threads: int | None = None,
        history_tokens: int = 384,
    ) -> LoraEngine:
        import torch

        if threads:
            torch.set_num_threads(threads)
        model, tokenizer = registry.load_base(base_name, cache_root, dtype="float32")
        if adapter is not None:
            from peft import PeftModel

            # Merged into the base weights: inference then costs the same as the base model.
            model = PeftModel.from_pretrained(model, adapter.path).merge_and_unload()
        if dtype != "float32":
            model = model.to(getattr(torch, dtype))
        # After a PEFT merge parameters are frozen, which sends bf16 prefill down a slow path;
        # under inference_mode requires_grad costs nothing (see PERFORMANCE-NOTES).
        model.requires_grad_(True)
        model.eval()
        return cls(model, tokenizer, base_name, adapter, history_tokens)

    def _eos_ids(self) -> list[int]:
        configured = self.model.generation_config.eos_token_id
        ids = set(configured if isinstance(configured, list) else [configured])
        ids.add(self.tokenizer.eos_token_id)
        ids.discard(None)
        return sorted(ids)

    def prompt_text(self, request: GenerationRequest) -> str:
        messages = build_messages(
            self.tokenizer, request.question, request.history, request.grounding, self.history_tokens
        )
        return render(self.tokenizer, messages, add_generation_prompt=True)

    def prompt_ids(self, request: GenerationRequest) -> Any:
        # Chat templates already hold their special tokens; plain prompts get the tokenizer's own.
        return self.tokenizer(
            self.prompt_text(request), return_tensors="pt", add_special_tokens=not self.tokenizer.chat_template
        )

    def stream(self, request: GenerationRequest, stats: GenerationStats) -> Iterator[str]:
        """Yield the answer as text pieces. Raises GenerationError if the model is busy past
        the deadline or generation fails."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        deadline = time.monotonic() + request.timeout
        if not self._lock.acquire(timeout=max(request.timeout, 0.01)):
            raise GenerationError("model busy")
        try:
            inputs = self.prompt_ids(request)
            streamer = TextIteratorStreamer(
                self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=request.timeout + 5
            )
            eos = self._eos_ids()

            class Budget(StoppingCriteria):
                def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                    if request.cancel.is_set():
                        stats.stopped_by = "cancelled"
                        return True
                    if time.monotonic() > deadline:
                        stats.stopped_by = "timeout"
                        return True
                    return False

            sampling = request.temperature > 0
            kwargs = {
                **inputs,
                "max_new_tokens": request.max_new_tokens,
                "do_sample": sampling,
                "streamer": streamer,
                "stopping_criteria": StoppingCriteriaList([Budget()]),
                "eos_token_id": eos,
                "pad_token_id": self.tokenizer.pad_token_id,
                "repetition_penalty": 1.1,
            }
            if sampling:
                kwargs.update(temperature=request.temperature, top_p=0.9)
            else:
                kwargs.update(temperature=None, top_p=None, top_k=None)
            errors: list[BaseException] = []
            output: list[Any] = []

            def run() -> None:
                try:
                    with torch.inference_mode():
                        output.append(self.model.generate(**kwargs))
                except BaseException as error:  # surfaced to the caller below
                    errors.append(error)
                    streamer.end()

            worker = threading.Thread(target=run, name="medbot-generate", daemon=True)
            worker.start()
            try:
                yield from streamer
            except Exception as error:  # queue timeout: the model stalled
                request.cancel.set()
                raise GenerationError(f"generation stalled: {error}") from error
            finally:
                if worker.is_alive():  # the consumer stopped early (client gone): stop the model too
                    request.cancel.set()
                worker.join()
            if errors:
                raise GenerationError(f"generation failed: {errors[0]!r}") from errors[0]
            if output:
                new_tokens = output[0].shape[-1] - inputs["input_ids"].shape[-1]
                stats.tokens = int(new_tokens)
                if not stats.stopped_by:
                    stats.stopped_by = "max_tokens" if new_tokens >= request.max_new_tokens else "eos"
        finally:
            self._lock.release()


class EngineManager:
    """Owns this process's engine: its state, background loading, and adapter swaps."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._engine: LoraEngine | None = None
        self._state = DISABLED
        self._error = ""
        self._loading_thread: threading.Thread | None = None
        self._wanted: adapters.AdapterRef | None = None
        self._checked_at = 0.0
        self.load_seconds: float | None = None

    @property
    def state(self) -> str:
        if not settings.MEDBOT_LOAD_MODEL:
            return DISABLED
        return self._state

    def status(self) -> dict[str, Any]:
        engine = self._engine
        return {
            "state": self.state,
            "base_model": settings.MEDBOT_BASE_MODEL,
            "adapter_version": engine.version if engine else None,
            "error": self._error or None,
            "load_seconds": round(self.load_seconds, 2) if self.load_seconds is not None else None,
        }

    def start(self, wait: bool = False) -> None:
        """Begin loading in the background (idempotent); with wait=True block until done."""
        if not settings.MEDBOT_LOAD_MODEL:
            return
        with self._lock:
            if self._state in (DISABLED, FAILED) and self._engine is None:
                self._wanted = adapters.active_adapter()
                self._checked_at = time.monotonic()
                self._spawn(self._wanted)
            thread = self._loading_thread
        if wait and thread is not None:
            thread.join()

    def _spawn(self, adapter: adapters.AdapterRef | None) -> None:
        if self._engine is None:
            self._state = LOADING
        thread = threading.Thread(target=self._load, args=(adapter,), name="medbot-engine-load", daemon=True)
        self._loading_thread = thread
        thread.start()

    def _load(self, adapter: adapters.AdapterRef | None) -> None:
        started = time.monotonic()
        try:
            engine = LoraEngine.load(
                settings.MEDBOT_BASE_MODEL,
                adapter,
                Path(settings.MEDBOT_MODEL_CACHE),
                dtype=settings.MEDBOT_DTYPE,
                threads=settings.MEDBOT_TORCH_THREADS,
                history_tokens=settings.MEDBOT_HISTORY_TOKENS,
            )
        except Exception as error:
            logger.warning("Model unavailable, answering from the rules: %s", error, exc_info=True)
            with self._lock:
                self._error = str(error)[:500]
                if self._engine is None:
                    self._state = FAILED
            return
        with self._lock:
            self._engine = engine
            self._state = READY
            self._error = ""
            self.load_seconds = time.monotonic() - started
        logger.info(
            "Model ready: %s with adapter %s in %.1f s", settings.MEDBOT_BASE_MODEL, engine.version, self.load_seconds
        )

    def get(self) -> Generator | None:
        """The ready engine, or None while loading/disabled/failed. Starts loading on first
        use and notices a newly activated adapter (the old one serves until the new is ready)."""
        if not settings.MEDBOT_LOAD_MODEL:
            return None
        if self._state == DISABLED:
            self.start()
        now = time.monotonic()
        if self._state == READY and now - self._checked_at > ADAPTER_CHECK_SECONDS:
            self._checked_at = now
            wanted = adapters.active_adapter()
            with self._lock:
                loading = self._loading_thread is not None and self._loading_thread.is_alive()
                if wanted != self._wanted and not loading:
                    logger.info("Active adapter changed to %s; reloading", wanted.version if wanted else "base")
                    self._wanted = wanted
                    self._spawn(wanted)
        return self._engine

    def reset(self) -> None:
        """Forget the engine (tests, and settings changes)."""
        with self._lock:
            self._engine = None
            self._state = DISABLED
            self._error = ""
            self._wanted = None
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

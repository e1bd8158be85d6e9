"""``EngineConfig``: the one place where Django settings become engine options.

The manager, the benchmarks (bench/generation.py, bench/concurrency.py, bench/coldstart.py) and
the tests all build engines from an ``EngineConfig``; ``from_settings()`` reads the settings and
``replace()`` gives a variant (a benchmark's fp32 run, a test's tiny model).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENGINE_KINDS = ("local", "openai")
DTYPE_CHOICES = ("float32", "bfloat16")
QUANTIZE_CHOICES = ("none", "int8", "int4")


@dataclass(frozen=True)
class EngineConfig:
    kind: str = "local"  # "local" (this process's LoRA engine) or "openai" (a remote model server)
    base_model: str = "smollm2-135m-instruct"  # registry name or local folder (local engine)
    cache_root: Path = Path("model-cache")  # converted and de-quantised weights live here
    dtype: str = "bfloat16"  # activations and unquantised weights: float32 or bfloat16
    quantize: str = "int4"  # weight-only quantisation of linear layers: none, int8 or int4
    threads: int | None = 1  # torch threads for one request decoding alone (1 is as fast as 2)
    batch_threads: int | None = None  # threads for prefill and batched decode (None: ``threads``)
    max_batch: int = 8  # requests sharing one forward pass per token
    history_tokens: int = 384  # token budget for earlier turns in the prompt
    url: str = ""  # remote engine: base URL of the OpenAI-compatible API, e.g. http://llm:8080/v1
    served_model: str = ""  # remote engine: model name for the base model (adapters: see remote.py)
    api_key: str = ""  # remote engine: bearer token, if the server wants one
    probe_timeout: float = 3.0  # seconds for the remote readiness probe

    def __post_init__(self) -> None:
        if self.kind not in ENGINE_KINDS:
            raise ValueError(f"engine kind must be one of {ENGINE_KINDS}, got {self.kind!r}")
        if self.dtype not in DTYPE_CHOICES:
            raise ValueError(f"dtype must be one of {DTYPE_CHOICES}, got {self.dtype!r}")
        if self.quantize not in QUANTIZE_CHOICES:
            raise ValueError(f"quantize must be one of {QUANTIZE_CHOICES}, got {self.quantize!r}")
        if self.kind == "openai" and not self.url:
            raise ValueError("the openai engine needs a URL (MEDBOT_ENGINE_URL)")

    @classmethod
    def from_settings(cls, adapter: str | None = None, **overrides: Any) -> EngineConfig:
        """The engine options the Django settings ask for; ``overrides`` win (benchmarks).

        ``auto`` dtype/quantisation is resolved here, for the CPU this process runs on and the
        adapter that will be merged (``adapter``: its version, None for the base model): the
        choice timed on this machine (``manage.py prepare_model``) if there is one, else the
        rule of thumb (``cpu.resolve_auto``)."""
        from django.conf import settings

        from inference.engine import choice, cpu

        kind = overrides.get("kind", settings.MEDBOT_ENGINE)
        if kind == "local":
            measured = None
            if "auto" in (settings.MEDBOT_DTYPE, settings.MEDBOT_QUANTIZE):
                base = overrides.get("base_model", settings.MEDBOT_BASE_MODEL)
                root = Path(overrides.get("cache_root", settings.MEDBOT_MODEL_CACHE))
                measured = choice.cached(root, base, adapter or "")
            dtype, quantize = cpu.resolve_auto(
                settings.MEDBOT_DTYPE, settings.MEDBOT_QUANTIZE, adapter is not None, measured
            )
        else:  # the model server decides; resolving "auto" would import torch for nothing
            dtype, quantize = "float32", "none"
        options: dict[str, Any] = {
            "kind": kind,
            "base_model": settings.MEDBOT_BASE_MODEL,
            "cache_root": Path(settings.MEDBOT_MODEL_CACHE),
            "dtype": dtype,
            "quantize": quantize,
            "threads": settings.MEDBOT_TORCH_THREADS,
            "batch_threads": settings.MEDBOT_BATCH_THREADS,
            "max_batch": settings.MEDBOT_MAX_BATCH,
            "history_tokens": settings.MEDBOT_HISTORY_TOKENS,
            "url": settings.MEDBOT_ENGINE_URL,
            "served_model": settings.MEDBOT_ENGINE_MODEL,
            "api_key": settings.MEDBOT_ENGINE_API_KEY,
        }
        options.update(overrides)
        return cls(**options)

    def replace(self, **changes: Any) -> EngineConfig:
        return dataclasses.replace(self, **changes)

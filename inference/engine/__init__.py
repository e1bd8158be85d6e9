"""The model engine, as the rest of MedBot sees it.

One module per reason to change: ``types`` (requests, stats, ``GenerationError``, the
``Generator`` protocol), ``config`` (``EngineConfig.from_settings()``: the only place settings
become engine options), ``cpu`` (the ``auto`` choice per processor), ``quantisation``,
``converted`` (the converted-weights cache), ``batcher``, ``lora`` (the local engine),
``remote`` (an OpenAI-compatible model server) and ``manager`` (this process's engine).

Importing this package never imports torch; the local engine's modules import it lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from inference.engine.config import EngineConfig
from inference.engine.manager import EngineManager, engine_status, get_manager
from inference.engine.types import (
    FAILED,
    LOADING,
    OFF,
    READY,
    Generation,
    GenerationError,
    GenerationRequest,
    GenerationStats,
    Generator,
    Stream,
)

if TYPE_CHECKING:
    from inference.engine.lora import LoraEngine
    from inference.engine.remote import RemoteEngine

# Seconds between checks for a newly activated adapter (read at call time by the manager).
ADAPTER_CHECK_SECONDS = 3.0

__all__ = [
    "ADAPTER_CHECK_SECONDS",
    "FAILED",
    "LOADING",
    "OFF",
    "READY",
    "EngineConfig",
    "EngineManager",
    "Generation",
    "GenerationError",
    "GenerationRequest",
    "GenerationStats",
    "Generator",
    "LoraEngine",
    "RemoteEngine",
    "Stream",
    "engine_status",
    "get_manager",
]


def __getattr__(name: str) -> Any:
    # The engines themselves on demand, so ``from inference.engine import LoraEngine`` keeps working.
    if name == "LoraEngine":
        from inference.engine.lora import LoraEngine

        return LoraEngine
    if name == "RemoteEngine":
        from inference.engine.remote import RemoteEngine

        return RemoteEngine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""What callers of the engine see: requests, stats, the one error type and the ``Generator`` seam.

Nothing here imports torch, so the pipeline, the views and the tests can import it for free.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from inference.prompting import Turn

# The manager's states. OFF only when MEDBOT_LOAD_MODEL=0; FAILED answers from the rules and
# retries on the next start().
OFF, LOADING, READY, FAILED = "off", "loading", "ready", "failed"
STATES = (OFF, LOADING, READY, FAILED)

# Why a generation stopped (GenerationStats.stopped_by).
EOS, MAX_TOKENS, TIMEOUT, CANCELLED, ERROR = "eos", "max_tokens", "timeout", "cancelled", "error"


class GenerationError(RuntimeError):
    """Generation failed or could not start in time (a local model error, a remote server that is
    down, slow or answers garbage). The only error an engine raises; callers fall back to the rules."""


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
    """How a generation went; filled in while it streams and final once the stream ends."""

    tokens: int = 0
    stopped_by: str = ""  # EOS, MAX_TOKENS, TIMEOUT, CANCELLED or ERROR
    token_ids: list[int] = field(default_factory=list)  # the answer's tokens (local engine; benchmarks compare them)


class Stream(Iterator[str]):
    """One generation in flight: iterate it for text pieces; ``stats`` says how it ended.

    ``close()`` (or dropping the loop early) cancels the generation."""

    def __init__(self, pieces: Iterator[str], stats: GenerationStats) -> None:
        self._pieces = pieces
        self.stats = stats

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> str:
        return next(self._pieces)

    def close(self) -> None:
        close = getattr(self._pieces, "close", None)
        if close is not None:
            close()

    @property
    def stopped_by(self) -> str:
        return self.stats.stopped_by


@dataclass(frozen=True)
class Generation:
    """A whole answer at once (``Generator.generate``)."""

    text: str
    stats: GenerationStats

    @property
    def stopped_by(self) -> str:
        return self.stats.stopped_by


class Generator(Protocol):
    """What the answer pipeline needs from a model: the local LoRA engine and the remote
    OpenAI-compatible engine are the two implementations.

    ``stream(request)`` returns a ``Stream`` whose ``stats`` report tokens and the stop reason.
    Passing ``stats`` is the older form and fills that object instead (the same object the
    returned stream carries). Both raise only ``GenerationError``."""

    version: str

    def stream(self, request: GenerationRequest, stats: GenerationStats | None = None) -> Stream: ...

    def generate(self, request: GenerationRequest) -> Generation: ...


def collect(stream: Stream) -> Generation:
    """Drain a stream into a ``Generation`` (the shared ``generate`` of both engines)."""
    text = "".join(stream)
    return Generation(text, stream.stats)


def eos_ids(model: object, tokenizer: object) -> list[int]:
    """The token ids that end an answer: the model's generation config's and the tokenizer's."""
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = set(configured if isinstance(configured, list) else [configured])
    ids.add(getattr(tokenizer, "eos_token_id", None))
    ids.discard(None)
    return sorted(ids)

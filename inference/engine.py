"""The per-process model engine: a base causal LM with the active LoRA adapter merged in.

One engine per worker process, created lazily behind a lock (never at import time) and loaded
in a background thread so a worker can answer from the rules while the model loads. The
engine checks for a newly activated adapter every few seconds and swaps it in without a restart.

Speed (measured in BENCHMARKS.md): the merged model's linear layers are quantised weight-only
(int4 by default, on the very grid of SmolLM2's packaged GGUF weights), the converted weights
are kept on disk so later starts skip the conversion, and one decode thread batches every
request in flight into shared forward passes while each request streams its own answer.

``torch``, ``transformers`` and ``peft`` are imported inside the loader only.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
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
    token_ids: list[int] = field(default_factory=list)  # the answer's tokens (benchmarks compare them)


class Generator(Protocol):
    """What the answer pipeline needs from a model; the LoRA engine is one implementation."""

    version: str

    def stream(self, request: GenerationRequest, stats: GenerationStats) -> Iterator[str]: ...


QUANTIZE_CHOICES = ("none", "int8", "int4")
INT4_GROUP = 32  # weights per int4 scale/offset: the block size of the GGUF Q4_1 weights SmolLM2 ships in
REPETITION_PENALTY = 1.1
IDLE_EXIT_SECONDS = 10.0  # the decode thread exits when idle, so a swapped-out engine can be freed


_INT8_CLASS: Any = None
_INT4_CLASS: Any = None
_SHORTLIST_CLASS: Any = None
SHORTLIST = 128  # candidates the int4 output head hands to exact rescoring


def _int8_linear_class() -> Any:
    """Build the int8 weight-only layer class on first use, so importing this module never imports torch.

    Weights are stored as int8 with one scale per output channel; activations stay in the model's
    dtype. The matmul is PyTorch's own ``aten._weight_int8pack_mm`` kernel (the one gpt-fast and
    torchao use on CPU), which reads the int8 weights directly: half the memory traffic of bf16.
    Dynamic int8 (activations quantised too) broke SmolLM2's answers; weight-only keeps them
    (see PERFORMANCE-NOTES and BENCHMARKS.md)."""
    global _INT8_CLASS
    if _INT8_CLASS is not None:
        return _INT8_CLASS
    import torch

    class _Int8WeightOnlyLinear(torch.nn.Module):
        def __init__(self, in_features: int, out_features: int, bias: bool) -> None:
            """An empty layer of the right shapes (loading a converted model fills it)."""
            super().__init__()
            self.in_features = in_features
            self.out_features = out_features
            self.register_buffer("weight_int8", torch.empty(out_features, in_features, dtype=torch.int8))
            self.register_buffer("scale", torch.empty(out_features))
            self.register_buffer("bias", torch.empty(out_features) if bias else None)

        @classmethod
        def quantise(cls, weight: torch.Tensor, bias: torch.Tensor | None) -> _Int8WeightOnlyLinear:
            """Per output channel: scale = max|w| / 127, so each weight is off by at most half a step."""
            weight = weight.detach().float()  # [out, in]
            layer = cls(weight.shape[1], weight.shape[0], bias is not None)
            scale = weight.abs().amax(dim=1).clamp(min=1e-8) / 127.0
            quantised = torch.round(weight / scale[:, None]).clamp_(-127, 127).to(torch.int8)
            # The kernel reads rows directly: a strided weight (some loaders leave views) gives garbage.
            layer.weight_int8 = quantised.contiguous()
            layer.scale = scale
            if bias is not None:
                layer.bias = bias.detach().float().clone()
            return layer

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            shape = x.shape
            flat = x.reshape(-1, self.in_features).contiguous()
            scale = self.scale if self.scale.dtype == x.dtype else self.scale.to(x.dtype)
            out = torch.ops.aten._weight_int8pack_mm(flat, self.weight_int8, scale)
            if self.bias is not None:
                out = out + (self.bias if self.bias.dtype == x.dtype else self.bias.to(x.dtype))
            return out.reshape(*shape[:-1], self.out_features)

        def extra_repr(self) -> str:
            return f"in_features={self.in_features}, out_features={self.out_features}, int8 weight-only"

    _INT8_CLASS = _Int8WeightOnlyLinear
    return _INT8_CLASS


def _int4_linear_class() -> Any:
    """The int4 weight-only layer: groups of 32 weights share a scale and an offset (asymmetric),
    activations stay in the model's dtype, and PyTorch's ``aten._weight_int4pack_mm_for_cpu``
    kernel (gpt-fast's and torchao's CPU int4 path) does the matmul.

    Why it pays for SmolLM2: its packaged weights *are* GGUF Q4_1 — groups of 32 with a scale
    and a minimum — so this grid holds them exactly (only the bf16 rounding of scales and
    offsets remains), at a quarter of the bytes of bf16. Decoding one request on this machine
    streams every weight from memory per token, so bytes are speed. Other models (and merged
    adapters) are not on that grid: for them int4 is an ordinary lossy 4-bit quantisation, and
    BENCHMARKS.md says how far it drifts."""
    global _INT4_CLASS
    if _INT4_CLASS is not None:
        return _INT4_CLASS
    import torch

    class _Int4WeightOnlyLinear(torch.nn.Module):
        def __init__(self, in_features: int, out_features: int, bias: bool) -> None:
            """An empty layer (loading a converted model fills it; the packed shape is the kernel's)."""
            super().__init__()
            self.in_features = in_features
            self.out_features = out_features
            self.register_buffer("weight_int4", torch.empty(0, dtype=torch.uint8))
            self.register_buffer("scales_and_zeros", torch.empty(0))
            self.register_buffer("bias", torch.empty(out_features) if bias else None)

        @classmethod
        def quantise(cls, weight: torch.Tensor, bias: torch.Tensor | None) -> _Int4WeightOnlyLinear:
            weight = weight.detach().float()  # [out, in]
            out_features, in_features = weight.shape
            layer = cls(in_features, out_features, bias is not None)
            groups = weight.reshape(out_features, in_features // INT4_GROUP, INT4_GROUP)
            low = groups.amin(dim=-1, keepdim=True)
            scale = ((groups.amax(dim=-1, keepdim=True) - low) / 15).clamp(min=1e-10)
            quantised = torch.round((groups - low) / scale).clamp_(0, 15).to(torch.int32)
            layer.weight_int4 = torch.ops.aten._convert_weight_to_int4pack_for_cpu(
                quantised.reshape(out_features, in_features).contiguous(), 2
            )
            # The kernel computes (q - 8) * scale + zero, so zero = minimum + 8 * scale.
            scale, low = scale.squeeze(-1), low.squeeze(-1)  # [out, groups]
            layer.scales_and_zeros = torch.stack([scale.t(), (low + 8 * scale).t()], dim=-1).contiguous()
            if bias is not None:
                layer.bias = bias.detach().float().clone()
            return layer

        def _load_from_state_dict(
            self, state_dict: dict, prefix: str, local_metadata: Any, strict: bool, missing: list, *args: Any
        ) -> None:
            # The packed shape is the kernel's business: take the saved tensors as they are.
            for name in ("weight_int4", "scales_and_zeros", "bias"):
                key = prefix + name
                if key in state_dict:
                    setattr(self, name, state_dict[key])
                elif getattr(self, name) is not None:
                    missing.append(key)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            shape = x.shape
            flat = x.reshape(-1, self.in_features).contiguous()
            table = self.scales_and_zeros
            if table.dtype != x.dtype:
                table = table.to(x.dtype)
            out = torch.ops.aten._weight_int4pack_mm_for_cpu(flat, self.weight_int4, INT4_GROUP, table)
            if self.bias is not None:
                out = out + (self.bias if self.bias.dtype == x.dtype else self.bias.to(x.dtype))
            return out.reshape(*shape[:-1], self.out_features)

        def extra_repr(self) -> str:
            return f"in_features={self.in_features}, out_features={self.out_features}, int4 weight-only"

    _INT4_CLASS = _Int4WeightOnlyLinear
    return _INT4_CLASS


def _shortlist_head_class() -> Any:
    """An output head tied to the token embeddings, in two stages: int4 logits for the whole
    vocabulary (a quarter of the bytes of the int8 head, the largest matrix of a small model),
    then exact logits, from the embedding rows the model keeps anyway, for the 128 best.

    The greedy choice is the exact one whenever the exact best token is among int4's 128 best
    (int4 errs by ~11 % of the logits' spread, far less than the gap to rank 128); only tokens
    outside the shortlist keep approximate values, and those never win. So the head is both
    faster and closer to fp32 than the int8 head it replaces."""
    global _SHORTLIST_CLASS
    if _SHORTLIST_CLASS is not None:
        return _SHORTLIST_CLASS
    import torch

    class _ShortlistHead(_int4_linear_class()):
        exact_source: list[Any]  # [the input embedding module], set by quantize_weight_only

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            logits = super().forward(x)
            weight = self.exact_source[0].weight
            flat_x = x.reshape(-1, self.in_features)
            flat = logits.reshape(-1, self.out_features)
            top = flat.topk(min(SHORTLIST, self.out_features), dim=-1).indices  # [rows, k]
            exact = torch.bmm(weight[top], flat_x.to(weight.dtype).unsqueeze(-1)).squeeze(-1)
            return flat.scatter(1, top, exact.to(flat.dtype)).reshape(logits.shape)

        def extra_repr(self) -> str:
            return f"{super().extra_repr()}, exact top-{SHORTLIST} from the tied embeddings"

    _SHORTLIST_CLASS = _ShortlistHead
    return _SHORTLIST_CLASS


def _int4_fits(in_features: int, out_features: int) -> bool:
    """The CPU int4 kernel packs whole groups and tiles of rows."""
    return in_features % (INT4_GROUP * 2) == 0 and out_features % 8 == 0


def quantize_weight_only(model: Any, mode: str, empty: bool = False) -> int:
    """Quantise the model's linear layers in place for ``mode`` ("int8" or "int4"); returns how many.

    In int4 mode the output head is special: SmolLM2 ties it to the token embeddings, which the
    GGUF keeps at 8 bits (Q8_0), and plain 4 bits there costs answers (≈11 % relative error on
    the logits). A tied head becomes a two-stage int4 + exact-rescoring head; an untied one, and
    layers the int4 kernel cannot pack, get int8."""
    if mode == "int8":
        return quantize_int8_weight_only(model, empty)
    if mode != "int4":
        raise ValueError(f"unknown quantisation {mode!r}")
    head = model.get_output_embeddings()
    embeddings = model.get_input_embeddings()
    # An empty (meta) skeleton may not share the tensor yet: the config says whether it will.
    tied = head is not None and embeddings is not None
    tied = tied and (head.weight is embeddings.weight or bool(getattr(model.config, "tie_word_embeddings", False)))

    def choose(child: Any, weight: Any) -> str:
        if not _int4_fits(weight.shape[1], weight.shape[0]):
            return "int8"
        if child is head:
            return "shortlist" if tied else "int8"
        return "int4"

    swapped = quantize_int8_weight_only(model, empty, choose=choose)
    new_head = model.get_output_embeddings()
    if type(new_head).__name__ == "_ShortlistHead":
        new_head.exact_source = [embeddings]  # a plain reference: the weights are saved once
    return swapped


def quantize_int8_weight_only(model: Any, empty: bool = False, choose: Callable[[Any, Any], str] | None = None) -> int:
    """Swap every ``nn.Linear`` (and GPT-2's ``Conv1D``, which Linear-only quantisers skip) for an
    int8 weight-only layer, in place; returns how many were swapped. Run it before casting the
    rest of the model to bf16 so the scales come from the fp32 (merged) weights. ``empty`` makes
    layers of the right shapes only, for loading an already converted model."""
    import torch
    from transformers.pytorch_utils import Conv1D

    classes = {"int8": _int8_linear_class()}
    if choose:
        classes.update(int4=_int4_linear_class(), shortlist=_shortlist_head_class())
    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.Linear):
                weight = child.weight
            elif isinstance(child, Conv1D):  # weight is [in, out]: x @ W + b
                weight = child.weight.t()
            else:
                continue
            layer_class = classes[choose(child, weight) if choose else "int8"]
            if empty:
                replacement = layer_class(weight.shape[1], weight.shape[0], child.bias is not None)
            else:
                replacement = layer_class.quantise(weight, child.bias)
            setattr(parent, name, replacement)
            swapped += 1
    return swapped


CONVERTED_FORMAT = 2  # bump when the layout of converted files changes
CONVERTED_KEEP = 4  # converted files kept in the cache (current and recent adapters/settings)


def converted_file(
    base_name: str, adapter: adapters.AdapterRef | None, cache_root: Path, dtype: str, quantize: str
) -> Path | None:
    """Where the ready-to-serve weights (adapter merged, quantised, cast) of this combination live.

    Converting at every start costs more than loading (seconds of int8 rounding on two cores,
    and the fp32 copy doubles peak memory), so the result is kept once and loaded directly after.
    The name hashes everything that changes the result: the base files, the adapter files, dtype,
    quantisation and library versions. None when the base is not a local folder."""
    import hashlib
    import json

    import torch
    import transformers

    folder = Path(registry.model_folder(base_name, cache_root))
    if not folder.is_dir():
        return None

    def stamp(path: Path) -> list[Any]:
        if not path.is_dir():
            return []
        files = sorted(p for p in path.iterdir() if p.suffix in {".safetensors", ".bin", ".json"})
        return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]

    key = json.dumps(
        [
            str(folder.resolve()),
            stamp(folder),
            adapter.version if adapter else None,
            stamp(Path(adapter.path)) if adapter else None,
            dtype,
            quantize,
            torch.__version__,
            transformers.__version__,
            CONVERTED_FORMAT,
        ]
    )
    return cache_root / "converted" / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.safetensors"


def _save_converted(model: Any, path: Path) -> None:
    """Write the converted weights atomically (tied tensors once: loading ties them again)."""
    import contextlib
    import os
    import tempfile

    from safetensors.torch import save_file

    seen: set[int] = set()
    state = {}
    for name, tensor in model.state_dict().items():
        if tensor.data_ptr() in seen:
            continue
        seen.add(tensor.data_ptr())
        state[name] = tensor.contiguous()
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=".converted-", dir=path.parent)
    os.close(handle)
    try:
        save_file(state, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    # Each adapter version and setting adds a file: keep the newest few, not every one ever served.
    older = sorted(path.parent.glob("*.safetensors"), key=lambda p: p.stat().st_mtime, reverse=True)
    for stale in older[CONVERTED_KEEP:]:
        with contextlib.suppress(OSError):
            stale.unlink()


def _load_converted(path: Path, base_name: str, cache_root: Path, dtype: str, quantize: str) -> tuple[Any, Any]:
    """Build the model's skeleton without allocating weights, then take the saved tensors as they are."""
    import torch
    from accelerate import init_empty_weights
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    config, generation_config, tokenizer = registry.load_config_and_tokenizer(base_name, cache_root)
    with init_empty_weights():  # parameters on the meta device; buffers (rotary tables) real
        model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    if quantize != "none":
        quantize_weight_only(model, quantize, empty=True)
    # Tensors in a safetensors file sit at arbitrary offsets; the int8 kernel's vector loads
    # crash on a weight that is not 64-byte aligned, so such tensors get a fresh allocation.
    state = {name: t if t.data_ptr() % 64 == 0 else t.clone() for name, t in load_file(path).items()}
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    if unexpected:
        raise RuntimeError(f"unexpected tensors in {path.name}: {unexpected[:3]}")
    if missing:
        model.tie_weights()
    if any(t.is_meta for t in [*model.parameters(), *model.buffers()]):
        raise RuntimeError(f"{path.name} does not hold every weight (missing {missing[:3]})")
    if generation_config is not None:
        model.generation_config = generation_config
    return model, tokenizer


def _release_freed_memory() -> None:
    """Hand the fp32 weights freed after conversion back to the OS; glibc keeps them otherwise,
    and the worker's RSS would stay at its loading peak."""
    import contextlib
    import ctypes

    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class _Detokenizer:
    """Incremental detokenisation: emit text only once it can no longer change.

    The same offsets trick as text-generation-inference's ``Model.decode_token``: decode a short
    window before and after the new token and emit the difference, holding back while a byte
    sequence is incomplete (U+FFFD)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.tokens: list[int] = []
        self.prefix_offset = 0
        self.read_offset = 0

    def push(self, token: int) -> str:
        self.tokens.append(token)
        decode = self.tokenizer.decode
        prefix = decode(self.tokens[self.prefix_offset : self.read_offset], skip_special_tokens=True)
        text = decode(self.tokens[self.prefix_offset :], skip_special_tokens=True)
        if len(text) > len(prefix) and not text.endswith("\ufffd"):
            self.prefix_offset = self.read_offset
            self.read_offset = len(self.tokens)
            return text[len(prefix) :]
        return ""

    def flush(self) -> str:
        prefix = self.tokenizer.decode(self.tokens[self.prefix_offset : self.read_offset], skip_special_tokens=True)
        text = self.tokenizer.decode(self.tokens[self.prefix_offset :], skip_special_tokens=True)
        self.read_offset = len(self.tokens)
        self.prefix_offset = self.read_offset
        return text[len(prefix) :].replace("\ufffd", "") if len(text) > len(prefix) else ""


_DONE = object()


class _Row:
    """One request inside the batch: its prompt, its budget, and the queue its pieces go to."""

    def __init__(self, request: GenerationRequest, stats: GenerationStats, prompt: Any, deadline: float) -> None:
        self.request = request
        self.stats = stats
        self.prompt = prompt  # LongTensor [1, prompt_len]
        self.deadline = deadline
        self.out: queue.Queue[Any] = queue.Queue()
        self.detok: _Detokenizer | None = None
        self.seen: Any = None  # bool [vocab]: tokens in prompt or answer, for the repetition penalty
        self.generated = 0
        self.finished = False

    def finish(self, reason: str, error: BaseException | None = None) -> None:
        if self.finished:
            return
        self.finished = True
        if not self.stats.stopped_by:
            self.stats.stopped_by = reason
        if error is None and self.detok is not None:
            tail = self.detok.flush()
            if tail:
                self.out.put(tail)
        self.out.put(error if error is not None else _DONE)


class _Batcher:
    """Decodes every request in flight in one shared forward pass per token (continuous batching).

    A single thread owns the model. Each loop it admits waiting requests (each prompt is
    prefilled on its own, so its numbers match an unbatched run) and joins their KV caches to the
    batch, left-padded to a common length; then one forward pass advances every row by one token.
    Rows leave as soon as they hit end-of-turn, their own max_new_tokens, deadline or cancel, and
    the others carry on: a short answer never waits for a long one. This is the
    text-generation-inference ``CausalLMBatch`` concatenate/filter scheme, on transformers'
    ``DynamicCache``."""

    def __init__(
        self, engine: LoraEngine, max_batch: int, threads: int | None, batch_threads: int | None = None
    ) -> None:
        self.engine = engine
        self.max_batch = max(1, max_batch)
        # One request decodes as fast on one thread as on two (per-token overhead, not arithmetic,
        # is the limit); prompts and batches are wide enough for a second core to pay.
        self.threads = threads
        self.batch_threads = batch_threads or threads
        self._threads_now: int | None = None
        self._cond = threading.Condition()
        self._waiting: list[_Row] = []
        self._thread: threading.Thread | None = None
        # Batch state, touched by the decode thread only.
        self._rows: list[_Row] = []
        self._cache: Any = None
        self._mask: Any = None  # long [B, T]: 1 where the cache slot holds a real token
        self._positions: Any = None  # long [B]: position id of each row's next token
        self._last: Any = None  # long [B]: each row's latest token
        self.peak_batch = 0  # most rows ever decoded in one forward pass (benchmarks, tests)
        self._closed = False
        _live_batchers.add(self)

    def close(self) -> None:
        """Stop the decode thread: at interpreter exit a thread still parked in torch aborts
        the process ("terminate called without an active exception")."""
        with self._cond:
            self._closed = True
            thread = self._thread
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def submit(self, row: _Row) -> None:
        with self._cond:
            if self._closed:
                raise GenerationError("engine is shutting down")
            self._waiting.append(row)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="medbot-decode", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        import torch

        # OpenMP thread counts are per OS thread: they are set on the thread that runs the model.
        self._threads_now = None
        self._use_threads(self.threads)
        while True:
            with self._cond:
                if not self._waiting and not self._rows and not self._closed:
                    self._cond.wait(timeout=IDLE_EXIT_SECONDS)
                if self._closed or (not self._waiting and not self._rows):
                    self._thread = None
                    closing = [*self._rows, *self._waiting] if self._closed else []
                    self._waiting = []
                    for row in closing:
                        row.finish("cancelled", GenerationError("engine is shutting down"))
                    return
                room = self.max_batch - len(self._rows)
                admitted, self._waiting = self._waiting[:room], self._waiting[room:]
            try:
                with torch.inference_mode():
                    self._expire_waiting()
                    for row in admitted:
                        self._admit(row)
                    if self._rows:
                        self._step()
            except Exception as error:  # a broken model: fail every request in flight, keep serving
                logger.warning("Generation failed: %r", error)
                for row in [*self._rows, *admitted]:
                    row.finish("error", error)
                self._reset_batch()

    def _use_threads(self, count: int | None) -> None:
        if count and count != self._threads_now:
            import torch

            torch.set_num_threads(count)
            self._threads_now = count

    def _expire_waiting(self) -> None:
        now = time.monotonic()
        with self._cond:
            expired = [row for row in self._waiting if now > row.deadline or row.request.cancel.is_set()]
            self._waiting = [row for row in self._waiting if row not in expired]
        for row in expired:
            cancelled = row.request.cancel.is_set()
            row.finish("cancelled" if cancelled else "timeout", None if cancelled else GenerationError("model busy"))

    def _reset_batch(self) -> None:
        self._rows, self._cache, self._mask, self._positions, self._last = [], None, None, None, None

    # --- one request joins -------------------------------------------------------------------

    def _admit(self, row: _Row) -> None:
        import torch
        from transformers import DynamicCache

        if row.request.cancel.is_set():
            row.finish("cancelled")
            return
        if time.monotonic() > row.deadline:
            row.finish("timeout", GenerationError("model busy"))
            return
        model = self.engine.model
        prompt = row.prompt
        length = prompt.shape[1]
        cache = DynamicCache(config=model.config)
        positions = torch.arange(length)
        self._use_threads(self.batch_threads)
        out = model(
            input_ids=prompt,
            cache=cache,
            use_cache=True,
            position_ids=positions[None],
            cache_position=positions,
            logits_to_keep=1,
        )
        vocab = out.logits.shape[-1]
        row.seen = torch.zeros(vocab, dtype=torch.bool)
        row.seen[prompt[0].clamp(max=vocab - 1)] = True
        row.detok = _Detokenizer(self.engine.tokenizer)
        token = self._choose(out.logits[:, -1, :], [row])[0]
        if not self._emit(row, token):
            return
        self._join(row, cache, length, token)

    def _join(self, row: _Row, cache: Any, length: int, token: int) -> None:
        import torch
        import torch.nn.functional as F

        mask = torch.ones(1, length, dtype=torch.long)
        if not self._rows:
            self._rows, self._cache, self._mask = [row], cache, mask
            self._positions = torch.tensor([length])
            self._last = torch.tensor([token])
            return
        batch_len = self._mask.shape[1]
        width = max(batch_len, length)

        # Left-pad the shorter side: padded slots are masked out, so attention ignores them.
        def joined(batch_part: Any, row_part: Any) -> Any:
            return torch.cat(
                [F.pad(batch_part, (0, 0, width - batch_len, 0)), F.pad(row_part, (0, 0, width - length, 0))]
            )

        for batch_layer, row_layer in zip(self._cache.layers, cache.layers, strict=True):
            batch_layer.keys = joined(batch_layer.keys, row_layer.keys)
            batch_layer.values = joined(batch_layer.values, row_layer.values)
        self._mask = torch.cat([F.pad(self._mask, (width - batch_len, 0)), F.pad(mask, (width - length, 0))])
        self._positions = torch.cat([self._positions, torch.tensor([length])])
        self._last = torch.cat([self._last, torch.tensor([token])])
        self._rows.append(row)

    # --- one token for every row ---------------------------------------------------------------

    def _step(self) -> None:
        import torch

        now = time.monotonic()
        for row in self._rows:
            if row.request.cancel.is_set():
                row.finish("cancelled")
            elif now > row.deadline:
                row.finish("timeout")
        self._drop_finished()
        if not self._rows:
            return
        batch, width = self._mask.shape
        self.peak_batch = max(self.peak_batch, batch)
        self._use_threads(self.threads if batch == 1 else self.batch_threads)
        mask = torch.cat([self._mask, torch.ones(batch, 1, dtype=torch.long)], dim=1)
        out = self.engine.model(
            input_ids=self._last[:, None],
            attention_mask=mask,
            position_ids=self._positions[:, None],
            cache_position=torch.tensor([width]),
            cache=self._cache,
            use_cache=True,
        )
        self._mask = mask
        self._positions = self._positions + 1
        tokens = self._choose(out.logits[:, -1, :], self._rows)
        self._last = torch.tensor(tokens)
        for row, token in zip(self._rows, tokens, strict=True):
            self._emit(row, token)
        self._drop_finished()

    def _choose(self, logits: Any, rows: list[_Row]) -> list[int]:
        """Next token per row: repetition penalty over prompt and answer (as transformers'
        RepetitionPenaltyLogitsProcessor), then greedy, or temperature + top-p sampling."""
        import torch

        logits = logits.float()
        seen = torch.stack([row.seen for row in rows])
        penalised = torch.where(logits > 0, logits / REPETITION_PENALTY, logits * REPETITION_PENALTY)
        logits = torch.where(seen, penalised, logits)
        tokens = logits.argmax(dim=-1).tolist()
        for index, row in enumerate(rows):
            if row.request.temperature > 0:
                tokens[index] = _sample(logits[index], row.request.temperature, top_p=0.9)
        return tokens

    def _emit(self, row: _Row, token: int) -> bool:
        """Record a row's new token and stream its text; False when the row is finished."""
        row.generated += 1
        row.stats.tokens = row.generated
        row.stats.token_ids.append(token)
        if token in self.engine.eos_ids:
            row.finish("eos")
            return False
        if token < row.seen.shape[0]:
            row.seen[token] = True
        assert row.detok is not None
        piece = row.detok.push(token)
        if piece:
            row.out.put(piece)
        if row.generated >= row.request.max_new_tokens:
            row.finish("max_tokens")
            return False
        return True

    def _drop_finished(self) -> None:
        keep = [index for index, row in enumerate(self._rows) if not row.finished]
        if len(keep) == len(self._rows):
            return
        if not keep:
            self._reset_batch()
            return
        import torch

        index = torch.tensor(keep)
        self._rows = [self._rows[i] for i in keep]
        self._mask = self._mask.index_select(0, index)
        # Columns that are padding for every remaining row are dropped too.
        first = int(self._mask.any(dim=0).long().argmax())
        self._mask = self._mask[:, first:]
        for layer in self._cache.layers:
            layer.keys = layer.keys.index_select(0, index)[:, :, first:]
            layer.values = layer.values.index_select(0, index)[:, :, first:]
        self._positions = self._positions.index_select(0, index)
        self._last = self._last.index_select(0, index)


_live_batchers: weakref.WeakSet[_Batcher] = weakref.WeakSet()


@atexit.register
def _close_batchers() -> None:
    for batcher in list(_live_batchers):
        batcher.close()


def _sample(logits: Any, temperature: float, top_p: float) -> int:
    import torch

    probs = torch.softmax(logits / temperature, dim=-1)
    sorted_probs, order = probs.sort(descending=True)
    cumulative = sorted_probs.cumsum(dim=-1)
    # Keep the smallest set whose mass reaches top_p (always at least the best token).
    sorted_probs[(cumulative - sorted_probs) > top_p] = 0
    return int(order[torch.multinomial(sorted_probs / sorted_probs.sum(), 1)])


class LoraEngine:
    """A loaded model: ``stream`` yields text pieces. Requests in flight at the same time share
    forward passes (up to ``max_batch`` of them); each still streams its own answer."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        base_name: str,
        adapter: adapters.AdapterRef | None,
        history_tokens: int = 384,
        max_batch: int = 8,
        threads: int | None = None,
        batch_threads: int | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.base_name = base_name
        self.adapter = adapter
        self.version = adapter.version if adapter else "base"
        self.history_tokens = history_tokens
        self.eos_ids = frozenset(self._eos_ids())
        self._batcher = _Batcher(self, max_batch if _batchable(model) else 1, threads, batch_threads)

    @classmethod
    def load(
        cls,
        base_name: str,
        adapter: adapters.AdapterRef | None,
        cache_root: Path,
        dtype: str = "float32",
        threads: int | None = None,
        history_tokens: int = 384,
        quantize: str = "none",
        max_batch: int = 8,
        batch_threads: int | None = None,
    ) -> LoraEngine:
        """Load the base model, merge the adapter, then shrink it for speed.

        The order matters: merge in fp32 (exact), quantise the merged fp32 weights to int8 when
        asked, and only then cast what is left (norms, embeddings) to ``dtype``."""
        import torch

        if quantize not in QUANTIZE_CHOICES:
            raise ValueError(f"quantize must be one of {QUANTIZE_CHOICES}, got {quantize!r}")
        if threads:
            torch.set_num_threads(threads)
        converted = None
        if dtype != "float32" or quantize != "none":
            converted = converted_file(base_name, adapter, cache_root, dtype, quantize)
        model = tokenizer = None
        if converted is not None and converted.exists():
            try:
                model, tokenizer = _load_converted(converted, base_name, cache_root, dtype, quantize)
            except Exception as error:  # a damaged or foreign file: convert again
                logger.warning("Ignoring converted weights %s: %s", converted, error)
                model = tokenizer = None
        if model is None:
            model, tokenizer = registry.load_base(base_name, cache_root, dtype="float32")
            if adapter is not None:
                from peft import PeftModel

                # Merged into the base weights: inference then costs the same as the base model.
                model = PeftModel.from_pretrained(model, adapter.path).merge_and_unload()
            if quantize != "none":
                quantize_weight_only(model, quantize)
            if dtype != "float32":
                model = model.to(getattr(torch, dtype))
            if converted is not None:
                try:
                    _save_converted(model, converted)
                except OSError as error:  # a read-only cache only costs the next start time
                    logger.warning("Could not keep converted weights in %s: %s", converted, error)
        # After a PEFT merge parameters are frozen, which sends bf16 prefill down a slow path;
        # under inference_mode requires_grad costs nothing (see PERFORMANCE-NOTES).
        model.requires_grad_(True)
        model.eval()
        _release_freed_memory()
        engine = cls(
            model,
            tokenizer,
            base_name,
            adapter,
            history_tokens,
            max_batch=max_batch,
            threads=threads,
            batch_threads=batch_threads,
        )
        engine.warm_up()
        return engine

    def warm_up(self) -> None:
        """One tiny generation, so first-call costs (kernel selection, allocations) are paid
        while loading rather than by the first person to ask."""
        ids = self.tokenizer("Hello", return_tensors="pt", add_special_tokens=False)["input_ids"]
        for _piece in self.stream_prompt(ids, GenerationRequest("", max_new_tokens=2, timeout=60), GenerationStats()):
            pass

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
        the deadline or generation fails. Closing the iterator early cancels the request."""
        yield from self.stream_prompt(self.prompt_ids(request)["input_ids"], request, stats)

    def stream_prompt(self, prompt_ids: Any, request: GenerationRequest, stats: GenerationStats) -> Iterator[str]:
        """``stream`` for a prompt already tokenised ([1, length] ids): benchmarks feed fixed prompts."""
        deadline = time.monotonic() + request.timeout
        row = _Row(request, stats, prompt_ids, deadline)
        self._batcher.submit(row)
        try:
            while True:
                try:
                    # A little past the deadline: the decode thread itself stops the row on time.
                    item = row.out.get(timeout=max(deadline - time.monotonic(), 0.0) + 5)
                except queue.Empty:
                    raise GenerationError("generation stalled: no token before the deadline") from None
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    if isinstance(item, GenerationError):
                        raise item
                    raise GenerationError(f"generation failed: {item!r}") from item
                yield item
        finally:
            if not row.finished:  # the consumer stopped early (client gone): stop the model too
                request.cancel.set()


def _batchable(model: Any) -> bool:
    """Joining caches by left-padding is only right for plain full-attention layers."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    try:
        layers = DynamicCache(config=model.config).layers
    except Exception:
        return False
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


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
                quantize=settings.MEDBOT_QUANTIZE,
                max_batch=settings.MEDBOT_MAX_BATCH,
                batch_threads=settings.MEDBOT_BATCH_THREADS,
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

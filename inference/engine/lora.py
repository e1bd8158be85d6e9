"""The local engine: a base causal LM with the active LoRA adapter merged in, shrunk for speed
(``quantisation``), kept on disk once converted (``converted``), and decoding every request in
flight together (``batcher``). ``torch``, ``transformers`` and ``peft`` are imported inside
the loader only.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from inference import adapters, registry
from inference.engine import converted as converted_cache
from inference.engine.batcher import DONE, Batcher, Row
from inference.engine.config import EngineConfig
from inference.engine.quantisation import quantize_weight_only
from inference.engine.types import (
    Generation,
    GenerationError,
    GenerationRequest,
    GenerationStats,
    Stream,
    collect,
    eos_ids,
)
from inference.prompting import prompt_text, shared_start

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)


class LoraEngine:
    """A loaded model: ``stream`` yields text pieces. Requests in flight at the same time share
    forward passes (up to ``max_batch`` of them); each still streams its own answer."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        config: EngineConfig,
        adapter: adapters.AdapterRef | None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self.adapter = adapter
        self.version = adapter.version if adapter else "base"
        self.history_tokens = config.history_tokens
        self.eos_ids = frozenset(eos_ids(model, tokenizer))
        self.loaded_from_converted = False  # True when the weights came from the converted cache
        max_batch = config.max_batch if _batchable(model) else 1
        self._batcher = Batcher(self, max_batch, config.threads, config.batch_threads)

    @classmethod
    def load(cls, config: EngineConfig, adapter: adapters.AdapterRef | None = None) -> LoraEngine:
        """Load the base model, merge the adapter, shrink it as ``config`` says, and warm it up.

        The order matters: merge in fp32 (exact), quantise the merged fp32 weights (int8 or
        int4) when asked, and only then cast what is left (norms, embeddings) to ``config.dtype``.
        A converted copy of the result is loaded instead when the cache has one."""
        import torch

        if config.threads:
            torch.set_num_threads(config.threads)
        converted = None
        if config.dtype != "float32" or config.quantize != "none":
            converted = converted_cache.converted_file(
                config.base_model, adapter, config.cache_root, config.dtype, config.quantize
            )
        model = tokenizer = None
        if converted is not None and converted.exists():
            try:
                model, tokenizer = converted_cache.load_converted(
                    converted, config.base_model, config.cache_root, config.dtype, config.quantize
                )
            except Exception as error:  # a damaged or foreign file: convert again
                logger.warning("Ignoring converted weights %s: %s", converted, error)
                model = tokenizer = None
        from_cache = model is not None
        if model is None:
            model, tokenizer = cls._convert(config, adapter)
            if converted is not None:
                try:
                    converted_cache.save_converted(model, converted)
                except OSError as error:  # a read-only cache only costs the next start time
                    logger.warning("Could not keep converted weights in %s: %s", converted, error)
        # After a PEFT merge parameters are frozen, which sent bf16 prefill of the output head down
        # a slow path (TTFT 42 → 67 ms on SmolLM2); under inference_mode requires_grad costs nothing.
        model.requires_grad_(True)
        model.eval()
        _release_freed_memory()
        engine = cls(model, tokenizer, config, adapter)
        engine.loaded_from_converted = from_cache
        engine.warm_up()
        return engine

    @staticmethod
    def _convert(config: EngineConfig, adapter: adapters.AdapterRef | None) -> tuple[Any, Any]:
        """The base model in fp32, adapter merged, quantised, then cast."""
        import torch

        model, tokenizer = registry.load_base(config.base_model, config.cache_root, dtype="float32")
        if adapter is not None:
            from peft import PeftModel

            # Merged into the base weights: inference then costs the same as the base model.
            model = PeftModel.from_pretrained(model, adapter.path).merge_and_unload()
        if config.quantize != "none":
            quantize_weight_only(model, config.quantize)
        if config.dtype != "float32":
            model = cast_keeping_positions(model, getattr(torch, config.dtype))
        return model, tokenizer

    def warm_up(self) -> None:
        """One tiny generation, so first-call costs (kernel selection, allocations) are paid
        while loading rather than by the first person to ask."""
        ids = self.tokenizer("Hello", return_tensors="pt", add_special_tokens=False)["input_ids"]
        for _piece in self.stream_prompt(ids, GenerationRequest("", max_new_tokens=2, timeout=60)):
            pass

    def close(self) -> None:
        """Stop the decode thread (a swapped-out engine, the end of a benchmark)."""
        self._batcher.close()

    @property
    def peak_batch(self) -> int:
        """Most rows ever decoded in one forward pass (benchmarks, tests)."""
        return self._batcher.peak_batch

    def prompt_text(self, request: GenerationRequest) -> str:
        return prompt_text(self.tokenizer, request.question, request.history, request.grounding, self.history_tokens)

    def prompt_ids(self, request: GenerationRequest) -> Any:
        # Chat templates already hold their special tokens; plain prompts get the tokenizer's own.
        return self.tokenizer(
            self.prompt_text(request), return_tensors="pt", add_special_tokens=not self.tokenizer.chat_template
        )

    def shared_start_ids(self) -> Any:
        """Token ids of the start every grounded prompt shares (``prompting.shared_start``), or
        None when it cannot be built. The last token is left out: it may merge with what follows."""
        try:
            text = shared_start(self.tokenizer)
            ids = self.tokenizer(text, return_tensors="pt", add_special_tokens=not self.tokenizer.chat_template)
        except Exception:  # a tokenizer without what the template needs: no reuse, still correct
            logger.warning("No shared prompt start for this tokenizer", exc_info=True)
            return None
        return ids["input_ids"][0, :-1]

    def stream(self, request: GenerationRequest, stats: GenerationStats | None = None) -> Stream:
        """The answer as text pieces; the returned stream's ``stats`` say how it ended. Iterating
        raises GenerationError if the model is busy past the deadline or generation fails.
        Closing the stream early cancels the request."""
        stats = stats if stats is not None else GenerationStats()

        def pieces() -> Iterator[str]:
            try:
                ids = self.prompt_ids(request)["input_ids"]
            except Exception as error:
                raise GenerationError(f"could not build the prompt: {error!r}") from error
            yield from self._run(ids, request, stats)

        return Stream(pieces(), stats)

    def stream_prompt(
        self, prompt_ids: Any, request: GenerationRequest, stats: GenerationStats | None = None
    ) -> Stream:
        """``stream`` for a prompt already tokenised ([1, length] ids): benchmarks feed fixed prompts."""
        stats = stats if stats is not None else GenerationStats()
        return Stream(self._run(prompt_ids, request, stats), stats)

    def generate(self, request: GenerationRequest) -> Generation:
        return collect(self.stream(request))

    def _run(self, prompt_ids: Any, request: GenerationRequest, stats: GenerationStats) -> Iterator[str]:
        deadline = time.monotonic() + request.timeout
        row = Row(request, stats, prompt_ids, deadline)
        self._batcher.submit(row)
        try:
            while True:
                try:
                    # A little past the deadline: the decode thread itself stops the row on time.
                    item = row.out.get(timeout=max(deadline - time.monotonic(), 0.0) + 5)
                except queue.Empty:
                    raise GenerationError("generation stalled: no token before the deadline") from None
                if item is DONE:
                    return
                if isinstance(item, BaseException):
                    if isinstance(item, GenerationError):
                        raise item
                    raise GenerationError(f"generation failed: {item!r}") from item
                yield item
        finally:
            if not row.finished:  # the consumer stopped early (client gone): stop the model too
                request.cancel.set()


def cast_keeping_positions(model: Any, dtype: Any) -> Any:
    """``model.to(dtype)``, except the rotary position frequencies stay float32. They are not
    weights (not saved, rebuilt in fp32 when a converted copy loads), and in bf16 they lose
    enough precision that a freshly converted engine answered differently from the same engine
    loaded back from its converted file (logits off by up to 1.9 on a 326-token prompt)."""
    kept = {name: buffer for name, buffer in model.named_buffers() if name.endswith("inv_freq")}
    model = model.to(dtype)
    for name, buffer in kept.items():
        owner, _, attribute = name.rpartition(".")
        setattr(model.get_submodule(owner), attribute, buffer)
    return model


def _batchable(model: Any) -> bool:
    """Joining caches by left-padding is only right for plain full-attention layers."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    try:
        layers = DynamicCache(config=model.config).layers
    except Exception:
        return False
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


def _release_freed_memory() -> None:
    """Hand the fp32 weights freed after conversion back to the OS; glibc keeps them otherwise,
    and the worker's RSS would stay at its loading peak."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL("libc.so.6").malloc_trim(0)

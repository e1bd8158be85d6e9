"""Continuous batching: one decode thread advances every request in flight by one token per
shared forward pass, while each request streams its own answer through its own queue.

This is the text-generation-inference ``CausalLMBatch`` concatenate/filter scheme, on
transformers' ``DynamicCache``. ``torch`` is imported inside the methods that run the model.
"""

from __future__ import annotations

import atexit
import copy
import logging
import queue
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

from inference.engine.types import (
    CANCELLED,
    EOS,
    ERROR,
    MAX_TOKENS,
    TIMEOUT,
    GenerationError,
    GenerationRequest,
    GenerationStats,
)

if TYPE_CHECKING:
    from inference.engine.lora import LoraEngine

logger = logging.getLogger(__name__)

REPETITION_PENALTY = 1.1
IDLE_EXIT_SECONDS = 10.0  # the decode thread exits when idle, so a swapped-out engine can be freed
# A prompt reuses the shared start's KV cache when they agree on at least this many tokens.
MIN_SHARED_TOKENS = 16


class Detokenizer:
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


DONE = object()


class Row:
    """One request inside the batch: its prompt, its budget, and the queue its pieces go to."""

    def __init__(self, request: GenerationRequest, stats: GenerationStats, prompt: Any, deadline: float) -> None:
        self.request = request
        self.stats = stats
        self.prompt = prompt  # LongTensor [1, prompt_len]
        self.deadline = deadline
        self.out: queue.Queue[Any] = queue.Queue()
        self.detok: Detokenizer | None = None
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
        self.out.put(error if error is not None else DONE)


class Batcher:
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
        self._waiting: list[Row] = []
        self._thread: threading.Thread | None = None
        # Batch state, touched by the decode thread only.
        self._rows: list[Row] = []
        self._cache: Any = None
        self._mask: Any = None  # long [B, T]: 1 where the cache slot holds a real token
        self._positions: Any = None  # long [B]: position id of each row's next token
        self._last: Any = None  # long [B]: each row's latest token
        self.peak_batch = 0  # most rows ever decoded in one forward pass (benchmarks, tests)
        self.reused_tokens = 0  # prompt tokens taken from the shared start's cache (tests, benchmarks)
        # The KV cache of the text every grounded prompt starts with, computed once (decode thread).
        self._start_ids: Any = None  # long [n]
        self._start_cache: Any = None
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

    def submit(self, row: Row) -> None:
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
                        row.finish(CANCELLED, GenerationError("engine is shutting down"))
                    return
                room = self.max_batch - len(self._rows)
                admitted, self._waiting = self._waiting[:room], self._waiting[room:]
            try:
                with torch.inference_mode():
                    self._expire_waiting()
                    for row in admitted:
                        try:
                            self._admit(row)
                        except Exception as error:  # one bad prompt fails its own request only
                            logger.warning("Could not start a request: %r", error)
                            row.finish(ERROR, error)
                    if self._rows:
                        self._step()
            except Exception as error:  # a broken model: fail every request in flight, keep serving
                logger.warning("Generation failed: %r", error)
                for row in [*self._rows, *admitted]:
                    row.finish(ERROR, error)
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
            row.finish(CANCELLED if cancelled else TIMEOUT, None if cancelled else GenerationError("model busy"))

    def _reset_batch(self) -> None:
        self._rows, self._cache, self._mask, self._positions, self._last = [], None, None, None, None

    # --- one request joins -------------------------------------------------------------------

    def _admit(self, row: Row) -> None:
        import torch
        from transformers import DynamicCache

        if row.request.cancel.is_set():
            row.finish(CANCELLED)
            return
        if time.monotonic() > row.deadline:
            row.finish(TIMEOUT, GenerationError("model busy"))
            return
        model = self.engine.model
        prompt = row.prompt
        length = prompt.shape[1]
        if length == 0:
            raise GenerationError("empty prompt")
        self._use_threads(self.batch_threads)
        # The system message and rules are the same in every prompt: their keys and values come
        # from the shared start's cache, and only the rest (passages, question) is computed.
        start = self._shared_tokens(prompt)
        if start:
            cache = copy.deepcopy(self._start_cache)
            for layer in cache.layers:  # keys/values: [batch, heads, tokens, head_dim]
                layer.keys, layer.values = layer.keys[:, :, :start], layer.values[:, :, :start]
            self.reused_tokens += start
        else:
            cache = DynamicCache(config=model.config)
        positions = torch.arange(start, length)
        out = model(
            input_ids=prompt[:, start:],
            cache=cache,
            use_cache=True,
            position_ids=positions[None],
            cache_position=positions,
            logits_to_keep=1,
        )
        vocab = out.logits.shape[-1]
        row.seen = torch.zeros(vocab, dtype=torch.bool)
        row.seen[prompt[0].clamp(max=vocab - 1)] = True
        row.detok = Detokenizer(self.engine.tokenizer)
        token = self._choose(out.logits[:, -1, :], [row])[0]
        if not self._emit(row, token):
            return
        self._join(row, cache, length, token)

    def _shared_tokens(self, prompt: Any) -> int:
        """How many of the prompt's first tokens the shared start's cache holds (0: none usable).
        At least one token is always left to compute: its logits choose the first new token."""
        import torch
        from transformers import DynamicCache

        if self._start_ids is None:
            ids = self.engine.shared_start_ids()
            self._start_ids = ids if ids is not None else torch.zeros(0, dtype=torch.long)
            if len(self._start_ids) >= MIN_SHARED_TOKENS:
                self._start_cache = DynamicCache(config=self.engine.model.config)
                positions = torch.arange(len(self._start_ids))
                self.engine.model(
                    input_ids=self._start_ids[None],
                    cache=self._start_cache,
                    use_cache=True,
                    position_ids=positions[None],
                    cache_position=positions,
                    logits_to_keep=1,
                )
        if self._start_cache is None:
            return 0
        limit = min(len(self._start_ids), prompt.shape[1] - 1)
        differs = (prompt[0, :limit] != self._start_ids[:limit]).nonzero()
        shared = int(differs[0]) if len(differs) else limit
        return shared if shared >= MIN_SHARED_TOKENS else 0

    def _join(self, row: Row, cache: Any, length: int, token: int) -> None:
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
                row.finish(CANCELLED)
            elif now > row.deadline:
                row.finish(TIMEOUT)
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

    def _choose(self, logits: Any, rows: list[Row]) -> list[int]:
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

    def _emit(self, row: Row, token: int) -> bool:
        """Record a row's new token and stream its text; False when the row is finished."""
        row.generated += 1
        row.stats.tokens = row.generated
        row.stats.token_ids.append(token)
        if token in self.engine.eos_ids:
            row.finish(EOS)
            return False
        if token < row.seen.shape[0]:
            row.seen[token] = True
        assert row.detok is not None
        piece = row.detok.push(token)
        if piece:
            row.out.put(piece)
        if row.generated >= row.request.max_new_tokens:
            row.finish(MAX_TOKENS)
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


_live_batchers: weakref.WeakSet[Batcher] = weakref.WeakSet()


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

"""LoRA fine-tuning on the curated examples: one call of ``run`` makes one TrainingRun.

The Hugging Face Trainer does the loop (optimiser, schedule, evaluation, progress bar); this
module decides what the model sees and keeps the adapter lifecycle safe:

- every example is formatted by ``inference.prompting.training_text``, exactly as the engine
  formats a question, and only the answer tokens carry loss;
- a seeded split holds examples out for validation, evaluated before the first step and several
  times during the run, so ``loss_history`` shows whether the adapter generalises;
- the adapter is written to a hidden temporary folder in the adapter directory and renamed to
  ``run-<pk>`` only when complete. An interrupt (Ctrl-C or SIGTERM) or an error leaves no
  adapter folder, marks the run interrupted/failed with the reason in ``notes``, and never
  touches which run is active.

``torch``, ``transformers`` and ``peft`` are imported inside the functions that need them.
"""

from __future__ import annotations

import logging
import math
import random
import shutil
import signal
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils import timezone

from inference import registry
from inference.adapters import resolve_adapter_path
from inference.prompting import training_text
from training.models import TrainingExample, TrainingRun

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100  # label value the loss skips (PyTorch cross-entropy's ignore_index)

Progress = Callable[[str], None]


class TrainingError(ValueError):
    """The run cannot start: bad options or too little data. Nothing was recorded."""


class Interrupted(KeyboardInterrupt):
    """SIGTERM turned into an exception, so that a stopped container cleans up like Ctrl-C."""


@dataclass
class TrainConfig:
    """Options of one training run; ``manage.py train`` maps its flags onto these one to one."""

    base: str = ""  # registry name or local model folder; "" = settings.MEDBOT_BASE_MODEL, what servers load
    epochs: float = 3.0  # passes over the training split: enough for ~200 short answers, few enough not to memorise
    rank: int = 16  # LoRA rank r: 16 holds a style and a topic list, and the adapter stays a few MB
    alpha: int = 32  # LoRA alpha: updates are scaled by alpha / r = 2, the usual choice with r = 16
    dropout: float = 0.05  # dropout on the LoRA input: a little regularisation for a small data set
    learning_rate: float = 2e-4  # AdamW peak rate: the common LoRA rate (full fine-tuning would use ~10x less)
    batch_size: int = 4  # examples per optimiser step: small batches give more updates from 200 examples on CPU
    max_length: int = 512  # tokens per example, prompt + answer; SmolLM2's longest curated example is 260
    max_examples: int | None = None  # use at most this many enabled examples (a seeded sample); None = all
    validation_fraction: float = 0.1  # share held out for validation (at least one example)
    evaluations: int = 5  # evaluations spread over the run, plus one before the first step as the baseline
    warmup: float = 0.1  # share of the steps over which the learning rate ramps up from zero
    max_steps: int = -1  # stop after this many optimiser steps (smoke tests); -1 lets epochs decide
    threads: int = 0  # torch CPU threads; 0 = MEDBOT_TORCH_THREADS (1). On a busy 2-core host 1 ran 5x faster than 2
    seed: int = 42  # same seed + same data => same split, LoRA init, batch order, dropout and losses
    output: str = ""  # adapter root folder; "" = settings.MEDBOT_ADAPTER_DIR, where servers look
    activate: bool = False  # make the new adapter the served one after a successful run, never before
    progress_bar: bool = True  # the Trainer's tqdm bar (evaluations are reported through ``progress`` either way)

    def validate(self) -> None:
        """Raise TrainingError for options that would fail later, before anything is loaded."""
        problems = []
        if self.epochs <= 0:
            problems.append("epochs must be positive")
        if self.rank < 1 or self.alpha < 1:
            problems.append("rank and alpha must be at least 1")
        if not 0 <= self.dropout < 1:
            problems.append("dropout must be in [0, 1)")
        if self.learning_rate <= 0:
            problems.append("the learning rate must be positive")
        if self.batch_size < 1:
            problems.append("the batch size must be at least 1")
        if self.max_length < 16:
            problems.append("max length must be at least 16 tokens")
        if self.max_examples is not None and self.max_examples < 2:
            problems.append("max examples must be at least 2 (one to train on, one to validate)")
        if not 0 < self.validation_fraction < 1:
            problems.append("the validation fraction must be between 0 and 1")
        if self.evaluations < 1:
            problems.append("evaluations must be at least 1")
        if not 0 <= self.warmup < 1:
            problems.append("warmup must be in [0, 1)")
        if self.threads < 0:
            problems.append("threads must be 0 (MEDBOT_TORCH_THREADS) or more")
        if self.max_steps == 0 or self.max_steps < -1:
            problems.append("max steps must be positive, or -1 to train for the given epochs")
        if problems:
            raise TrainingError("; ".join(problems))

    def base_name(self) -> str:
        return self.base or settings.MEDBOT_BASE_MODEL

    def adapter_root(self) -> Path:
        return Path(self.output) if self.output else Path(settings.MEDBOT_ADAPTER_DIR)


# --- data -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    train: list[tuple[str, str]]
    validation: list[tuple[str, str]]


def split_examples(
    pairs: Sequence[tuple[str, str]], validation_fraction: float, seed: int, limit: int | None = None
) -> Split:
    """A seeded shuffle, an optional sample of ``limit``, then the validation share off the top.

    ``pairs`` must come in a stable order (by primary key) for the same seed to give the same split."""
    shuffled = list(pairs)
    random.Random(seed).shuffle(shuffled)
    if limit is not None:
        shuffled = shuffled[:limit]
    if len(shuffled) < 2:
        raise TrainingError(
            f"Training needs at least 2 examples (one to train on, one to validate); found {len(shuffled)}. "
            "Load the curated data (manage.py load_curated_data) or import some (manage.py import_training_data)."
        )
    held_out = min(len(shuffled) - 1, max(1, round(len(shuffled) * validation_fraction)))
    return Split(train=shuffled[held_out:], validation=shuffled[:held_out])


def enabled_pairs() -> list[tuple[str, str]]:
    """The enabled examples with a question and an answer, in primary-key order (stable for seeding)."""
    rows = TrainingExample.objects.filter(enabled=True).order_by("pk").values_list("question", "answer")
    return [(q.strip(), a.strip()) for q, a in rows if q.strip() and a.strip()]


def encode_example(
    tokenizer: PreTrainedTokenizerBase, question: str, answer: str, max_length: int
) -> dict[str, list[int]] | None:
    """Token ids and labels for one example; labels are IGNORE_INDEX on every prompt token.

    The prompt is tokenised on its own, with the special-token setting the engine uses, so the
    boundary between prompt and answer is the one the model meets when it generates. Answers that
    do not fit are cut at ``max_length``; None when not even one answer token fits."""
    prompt, completion = training_text(tokenizer, question, answer)
    prompt_ids = tokenizer(prompt, add_special_tokens=not getattr(tokenizer, "chat_template", None))["input_ids"]
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    room = max_length - len(prompt_ids)
    if room < 1 or not completion_ids:
        return None
    completion_ids = completion_ids[:room]
    return {
        "input_ids": prompt_ids + completion_ids,
        "labels": [IGNORE_INDEX] * len(prompt_ids) + completion_ids,
    }


@dataclass
class PadCollator:
    """Right-pads a batch to its longest example: padding is masked out of attention and loss.

    Padding to the batch (not to max_length) matters on CPU, where every pad token costs compute."""

    pad_token_id: int

    def __call__(self, features: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        longest = max(len(f["input_ids"]) for f in features)
        input_ids, labels, attention = [], [], []
        for f in features:
            pad = longest - len(f["input_ids"])
            input_ids.append(f["input_ids"] + [self.pad_token_id] * pad)
            labels.append(f["labels"] + [IGNORE_INDEX] * pad)
            attention.append([1] * len(f["input_ids"]) + [0] * pad)
        return {
            "input_ids": torch.tensor(input_ids, dtype=torch.long),
            "attention_mask": torch.tensor(attention, dtype=torch.long),
            "labels": torch.tensor(labels, dtype=torch.long),
        }


def encode_all(
    tokenizer: PreTrainedTokenizerBase, pairs: Sequence[tuple[str, str]], max_length: int
) -> tuple[list[dict[str, list[int]]], int]:
    """(encoded examples, how many were dropped because their prompt alone exceeds max_length)."""
    encoded = [encode_example(tokenizer, q, a, max_length) for q, a in pairs]
    kept = [e for e in encoded if e is not None]
    return kept, len(encoded) - len(kept)


# --- the run --------------------------------------------------------------------------------------


@dataclass
class _History:
    """Train and validation loss at each evaluation, collected from the Trainer's logs."""

    progress: Progress
    entries: list[dict[str, Any]] = field(default_factory=list)
    pending_train_loss: float | None = None

    def on_log(self, logs: dict[str, float], step: int, max_steps: int) -> None:
        if "loss" in logs:
            self.pending_train_loss = float(logs["loss"])
        if "eval_loss" not in logs:
            return
        entry = {
            "step": step,
            "epoch": round(float(logs.get("epoch", 0.0)), 3),
            "train_loss": self.pending_train_loss if step > 0 else None,
            "eval_loss": float(logs["eval_loss"]),
        }
        self.entries.append(entry)
        self.pending_train_loss = None
        train = f"train {entry['train_loss']:.4f} · " if entry["train_loss"] is not None else ""
        self.say(f"step {step}/{max_steps} · epoch {entry['epoch']:.2f} · {train}validation {entry['eval_loss']:.4f}")

    def say(self, line: str) -> None:
        from tqdm.auto import tqdm

        # Clears the progress bar (on stderr) while the line goes out, then redraws it.
        with tqdm.external_write_mode():
            self.progress(line)


def _callbacks(history: _History, progress_bar: bool) -> list[Any]:
    """The Trainer callbacks: loss bookkeeping, a log at the final step, and a quiet progress bar."""
    from transformers import ProgressCallback, TrainerCallback

    class LossHistory(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            # The Trainer evaluates at the last step by itself but does not log the training
            # loss of the last stretch; without this the final evaluation has no train loss.
            if state.global_step >= state.max_steps:
                control.should_log = True
            return control

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kw: Any) -> None:
            history.on_log(logs or {}, state.global_step, state.max_steps)

    class QuietProgressBar(ProgressCallback):
        """The Trainer's tqdm bar without its raw log dictionaries (LossHistory reports evaluations)."""

        def on_log(self, *args: Any, **kwargs: Any) -> None:
            return None

    return [LossHistory(), *([QuietProgressBar()] if progress_bar else [])]


@contextmanager
def _torch_threads(count: int) -> Iterator[None]:
    """Set torch's thread count for the run and restore it after (it is process-wide)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While training, SIGTERM (docker stop, a killed job) raises Interrupted in the main thread,
    so the same clean-up as Ctrl-C runs. Signal handlers can only be set from the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Interrupted("SIGTERM")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def publishable(folder: Path) -> int:
    """Make the adapter readable by server workers and return its size in bytes.

    mkdtemp creates the scratch folder 0700 and safetensors writes 0600: fine for one user,
    unreadable for workers that run as another. Adapters are not secrets."""
    folder.chmod(0o755)
    size = 0
    for path in folder.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
        size += path.stat().st_size if path.is_file() else 0
    return size


def stored_adapter_path(folder: Path) -> str:
    """Relative to MEDBOT_ADAPTER_DIR when inside it (so the volume can move), else absolute."""
    root = Path(settings.MEDBOT_ADAPTER_DIR).resolve()
    try:
        return str(folder.resolve().relative_to(root))
    except ValueError:
        return str(folder.resolve())


def _quiet(line: str) -> None:
    logger.info(line)


def run(config: TrainConfig, progress: Progress | None = None) -> TrainingRun:
    """Fine-tune a LoRA adapter on the enabled examples and record it as a TrainingRun.

    Returns the succeeded run (active if ``config.activate``). Raises TrainingError (nothing
    recorded) for bad options or too little data, ModelNotAvailable when the base model is not
    on this machine; on an interrupt or error during training the run is saved as interrupted or
    failed, no adapter folder is left, and the exception propagates."""
    say = progress or _quiet
    config.validate()
    split = split_examples(enabled_pairs(), config.validation_fraction, config.seed, config.max_examples)
    base = config.base_name()
    root = config.adapter_root()

    from transformers import set_seed

    say(f"Loading base model {base} …")
    model, tokenizer = registry.load_base(base, Path(settings.MEDBOT_MODEL_CACHE), dtype="float32")
    _forget_gguf_origin(model)
    targets = registry.lora_targets(model.config.model_type)
    train_set, dropped_train = encode_all(tokenizer, split.train, config.max_length)
    validation_set, dropped_validation = encode_all(tokenizer, split.validation, config.max_length)
    if not train_set or not validation_set:
        raise TrainingError(f"No example fits in --max-length {config.max_length} tokens with its prompt.")

    training_run = TrainingRun.objects.create(
        base_model=base,
        lora_rank=config.rank,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=targets,
        epochs=config.epochs,
        learning_rate=config.learning_rate,
        seed=config.seed,
        example_count=len(train_set) + len(validation_set),
        config=asdict(config),
    )
    final = root / training_run.version
    scratch: Path | None = None
    published: Path | None = None
    started = time.monotonic()
    with _sigterm_raises(), _torch_threads(config.threads or settings.MEDBOT_TORCH_THREADS):
        try:
            if final.exists():
                raise FileExistsError(f"{final} already exists (left by another database?); move it away first")
            root.mkdir(parents=True, exist_ok=True)
            scratch = Path(tempfile.mkdtemp(prefix=f".{training_run.version}-", dir=root))
            set_seed(config.seed)  # before get_peft_model: the LoRA A matrices start random
            history = _History(say)
            peft_model = _peft_model(model, targets, config)
            trainable, total = peft_model.get_nb_trainable_parameters()
            dropped = dropped_train + dropped_validation
            say(
                f"Run {training_run.pk}: {len(train_set)} training / {len(validation_set)} validation examples"
                + (f" ({dropped} dropped: prompt longer than {config.max_length} tokens)" if dropped else "")
                + f", LoRA r={config.rank} alpha={config.alpha} on {', '.join(targets)}"
                f" ({trainable / 1e6:.2f}M of {total / 1e6:.0f}M parameters trainable)"
            )
            with tempfile.TemporaryDirectory(prefix="medbot-trainer-") as trainer_dir:
                trainer = _trainer(peft_model, tokenizer, train_set, validation_set, config, history, trainer_dir)
                trainer.train()
            # Written complete into the hidden scratch folder, then renamed: servers only ever
            # see a whole adapter, and only under its final name.
            peft_model.save_pretrained(scratch)
            size = publishable(scratch)
            scratch.rename(final)
            scratch, published = None, final
            last = history.entries[-1]
            training_run.loss_history = history.entries
            training_run.train_loss = last["train_loss"]
            training_run.validation_loss = last["eval_loss"]
            training_run.adapter_path = stored_adapter_path(final)
            training_run.adapter_size_bytes = size
            training_run.duration_seconds = round(time.monotonic() - started, 2)
            training_run.status = TrainingRun.Status.SUCCEEDED
            training_run.finished_at = timezone.now()
            training_run.save()
        except BaseException as error:
            _record_stop(training_run, error, started, published)
            raise
        finally:
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
    if config.activate:
        training_run.activate()
    return training_run


def _forget_gguf_origin(model: Any) -> None:
    """Let the Trainer train a model de-quantised from GGUF.

    The SmolLM2 safetensors cache keeps the GGUF file's ``quantization_config`` in config.json,
    so transformers marks the loaded model as GGUF-quantised and the Trainer refuses it, although
    every weight is a plain float tensor. Dropped only when that is so (packed GGUF blocks would
    not be floating point)."""
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is None or quantizer.quantization_config.quant_method != "gguf":  # a str enum
        return
    if all(p.dtype.is_floating_point for p in model.parameters()):
        quantizer.remove_quantization_config(model)


def _peft_model(model: Any, targets: list[str], config: TrainConfig) -> Any:
    from peft import LoraConfig, get_peft_model
    from transformers.pytorch_utils import Conv1D

    # GPT-2 stores its projections transposed (Conv1D); PEFT must know to match the weights.
    fan_in_fan_out = any(isinstance(m, Conv1D) for n, m in model.named_modules() if n.rsplit(".", 1)[-1] in targets)
    lora = LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=targets,
        fan_in_fan_out=fan_in_fan_out,
        bias="none",
        task_type="CAUSAL_LM",
    )
    model.config.use_cache = False  # the KV cache is for generation; training recomputes everything
    return get_peft_model(model, lora)


def _trainer(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    train_set: list[dict[str, list[int]]],
    validation_set: list[dict[str, list[int]]],
    config: TrainConfig,
    history: _History,
    output_dir: str,
) -> Any:
    from transformers import PrinterCallback, ProgressCallback, Trainer, TrainingArguments

    steps_per_epoch = math.ceil(len(train_set) / config.batch_size)
    total_steps = config.max_steps if config.max_steps > 0 else math.ceil(config.epochs * steps_per_epoch)
    every = max(1, math.ceil(total_steps / config.evaluations))
    args = TrainingArguments(
        output_dir=output_dir,  # a temporary folder: nothing of the Trainer's lands in the repo
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        lr_scheduler_type="linear",
        warmup_steps=config.warmup,  # a float below 1 is a share of the total steps
        eval_strategy="steps",
        eval_steps=every,
        eval_on_start=True,  # the base model's validation loss: the baseline the run must beat
        logging_strategy="steps",
        logging_steps=every,  # logged with each evaluation, so every entry has its train loss
        save_strategy="no",  # no checkpoints; the final adapter is saved by run()
        report_to="none",
        use_cpu=True,
        seed=config.seed,
        data_seed=config.seed,
        prediction_loss_only=True,  # evaluation needs the loss only; keeping logits would cost GBs
        label_names=["labels"],
        remove_unused_columns=False,
        dataloader_pin_memory=False,
        disable_tqdm=not config.progress_bar,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=validation_set,
        data_collator=PadCollator(tokenizer.pad_token_id),
    )
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    for callback in _callbacks(history, config.progress_bar):
        trainer.add_callback(callback)
    return trainer


def _record_stop(training_run: TrainingRun, error: BaseException, started: float, published: Path | None) -> None:
    """Mark the run interrupted or failed and make sure no adapter of it is left to activate."""
    interrupted = isinstance(error, KeyboardInterrupt)
    # The rename comes just before the status is saved: if the stop came in between, the
    # complete folder goes too, since a run that did not succeed must not leave an adapter.
    if published is not None:
        shutil.rmtree(published, ignore_errors=True)
    reason = "SIGTERM" if isinstance(error, Interrupted) else "Ctrl-C" if interrupted else None
    if reason:
        notes = f"Interrupted by {reason}; no adapter was saved."
    else:
        tail = "".join(traceback.format_exception(error))[-2000:]
        notes = f"{type(error).__name__}: {error}\n\n{tail}"
    training_run.status = TrainingRun.Status.INTERRUPTED if interrupted else TrainingRun.Status.FAILED
    training_run.notes = notes
    training_run.adapter_path = ""
    training_run.active = False
    training_run.duration_seconds = round(time.monotonic() - started, 2)
    training_run.finished_at = timezone.now()
    try:
        training_run.save()
    except Exception:  # the original error matters more than the bookkeeping
        logger.exception("Could not record the end of training run %s", training_run.pk)


def summary(training_run: TrainingRun) -> str:
    """The closing report of a run, as printed by ``manage.py train``."""
    lines = [f"Run {training_run.pk} ({training_run.version}): {training_run.status}"]
    history = training_run.loss_history or []
    if history:
        first, last = history[0], history[-1]
        change = last["eval_loss"] - first["eval_loss"]
        lines.append(
            f"validation loss {first['eval_loss']:.4f} → {last['eval_loss']:.4f} "
            f"({change:+.4f}, first → last of {len(history)} evaluations, steps {first['step']}–{last['step']})"
        )
        trained = [h["train_loss"] for h in history if h["train_loss"] is not None]
        if trained:
            lines.append(f"train loss {trained[0]:.4f} → {trained[-1]:.4f}")
    if training_run.duration_seconds is not None:
        minutes, seconds = divmod(training_run.duration_seconds, 60)
        lines.append(f"time {int(minutes)} min {seconds:.0f} s · {training_run.example_count} examples")
    if training_run.adapter_path:
        size = (training_run.adapter_size_bytes or 0) / 1e6
        state = "active" if training_run.active else "not active (activate with --activate or TrainingRun.activate())"
        folder = resolve_adapter_path(training_run.adapter_path)
        lines.append(f"adapter {folder} · {size:.1f} MB · {state}")
    if training_run.notes:
        lines.append(training_run.notes.splitlines()[0])
    return "\n".join(lines)

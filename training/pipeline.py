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
import os
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
from training.evaluation import evaluate
from training.knowledge_set import evaluation_questions, with_grounding
from training.models import ActivationRefused, TrainingExample, TrainingRun

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
    epochs: float = 1.0  # passes over the training split: one over ~1,200 knowledge examples teaches the task
    rank: int = 16  # LoRA rank r: 16 holds a style and a topic list, and the adapter stays a few MB
    alpha: int = 32  # LoRA alpha: updates are scaled by alpha / r = 2, the usual choice with r = 16
    top_layers: float = 0.5  # share of the layers (the top ones) LoRA adapts; backward stops below them
    dropout: float = 0.05  # dropout on the LoRA input: a little regularisation for a small data set
    learning_rate: float = 2e-4  # AdamW peak rate: the common LoRA rate (full fine-tuning would use ~10x less)
    batch_size: int = 4  # examples per optimiser step: small batches give more updates from 200 examples on CPU
    max_length: int = 640  # tokens per example, prompt + answer; grounded prompts are ~330, answers ~70
    max_examples: int | None = None  # use at most this many enabled examples (a seeded sample); None = all
    validation_fraction: float = 0.1  # share held out for validation (at least one example) ...
    max_validation: int = 64  # ... and at most this many: each loss evaluation runs them all
    evaluations: int = 4  # loss evaluations spread over the run, plus one before the first step as the baseline
    warmup: float = 0.1  # share of the steps over which the learning rate ramps up from zero
    max_steps: int = -1  # stop after this many optimiser steps (smoke tests); -1 lets epochs decide
    threads: int = 0  # torch CPU threads; 0 = every core this process may use (training is a batch job)
    seed: int = 42  # same seed + same data => same split, LoRA init, batch order, dropout and losses
    output: str = ""  # adapter root folder; "" = settings.MEDBOT_ADAPTER_DIR, where servers look
    activate: bool = False  # make the new adapter the served one after a successful run, never before
    force: str = ""  # the reason to activate although the evaluation found it worse than the base; recorded
    eval_questions: int = 24  # held-out questions the adapter and the base answer at the end; 0 = no evaluation
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
        if self.max_validation < 1:
            problems.append("max validation must be at least 1")
        if self.evaluations < 1:
            problems.append("evaluations must be at least 1")
        if not 0 <= self.warmup < 1:
            problems.append("warmup must be in [0, 1)")
        if self.threads < 0:
            problems.append("threads must be 0 (every core) or more")
        if not 0 < self.top_layers <= 1:
            problems.append("top layers must be a share in (0, 1]")
        if self.eval_questions < 0:
            problems.append("eval questions must be 0 or more")
        if self.force and not self.activate:
            problems.append("--force is the reason for an activation: use it with --activate")
        if self.max_steps == 0 or self.max_steps < -1:
            problems.append("max steps must be positive, or -1 to train for the given epochs")
        if problems:
            raise TrainingError("; ".join(problems))

    def base_name(self) -> str:
        return self.base or settings.MEDBOT_BASE_MODEL

    def adapter_root(self) -> Path:
        return Path(self.output) if self.output else Path(settings.MEDBOT_ADAPTER_DIR)


# --- data -----------------------------------------------------------------------------------------


Example = tuple[str, str, str]  # (question, answer, grounding)


@dataclass(frozen=True)
class Split:
    train: list[Example]
    validation: list[Example]


def split_examples(
    pairs: Sequence[Example],
    validation_fraction: float,
    seed: int,
    limit: int | None = None,
    max_validation: int | None = None,
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
    if max_validation is not None:
        held_out = max(1, min(held_out, max_validation))
    return Split(train=shuffled[held_out:], validation=shuffled[:held_out])


def enabled_examples() -> list[Example]:
    """The enabled examples with a question and an answer, in primary-key order (stable for
    seeding), with their stored grounding ("" = retrieval finds it at training time)."""
    rows = TrainingExample.objects.filter(enabled=True).order_by("pk").values_list("question", "answer", "grounding")
    return [(q.strip(), a.strip(), g) for q, a, g in rows if q.strip() and a.strip()]


def encode_example(
    tokenizer: PreTrainedTokenizerBase, question: str, answer: str, max_length: int, grounding: str = ""
) -> dict[str, list[int]] | None:
    """Token ids and labels for one example; labels are IGNORE_INDEX on every prompt token.

    The prompt is tokenised on its own, with the special-token setting the engine uses, so the
    boundary between prompt and answer is the one the model meets when it generates. Answers that
    do not fit are cut at ``max_length``; None when not even one answer token fits."""
    prompt, completion = training_text(tokenizer, question, answer, grounding or None)
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

    Padding to the batch (not to max_length) matters on CPU, where every pad token costs compute.
    Only the answer tokens carry loss, so the output head (576 × 49,152 for SmolLM2) runs on the
    positions from the batch's shortest prompt on (``logits_to_keep``), not on the whole prompt:
    on a 400-token grounded prompt with a 70-token answer that is most of the head's work saved,
    forward and backward. The labels are cut to the same window; the loss is unchanged."""

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
        # The first answer token is predicted from the position before it.
        first = min(next(i for i, label in enumerate(f["labels"]) if label != IGNORE_INDEX) for f in features)
        keep = longest - max(first - 1, 0)
        return {
            "input_ids": torch.tensor(input_ids, dtype=torch.long),
            "attention_mask": torch.tensor(attention, dtype=torch.long),
            "labels": torch.tensor(labels, dtype=torch.long)[:, longest - keep :],
            "logits_to_keep": keep,
        }


def encode_all(
    tokenizer: PreTrainedTokenizerBase, examples: Sequence[Example], max_length: int
) -> tuple[list[dict[str, list[int]]], int]:
    """(encoded examples, how many were dropped because their prompt alone exceeds max_length)."""
    encoded = [encode_example(tokenizer, q, a, max_length, g) for q, a, g in examples]
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
    """Fine-tune a LoRA adapter on the enabled examples, evaluate it against the base model on
    held-out questions, and record both as a TrainingRun.

    Returns the succeeded run (active if ``config.activate`` and the evaluation allows it, or
    ``config.force`` gives the reason to override). Raises TrainingError (nothing recorded) for
    bad options or too little data, ModelNotAvailable when the base model is not on this
    machine; on an interrupt or error during training the run is saved as interrupted or failed,
    no adapter folder is left, and the exception propagates. An interrupted *evaluation* keeps the
    adapter (recorded as not evaluated, so it cannot be activated without an override)."""
    say = progress or _quiet
    config.validate()
    examples, without_passages = with_grounding(enabled_examples())
    if without_passages:
        say(f"{without_passages} examples left out: no passage is found for their question, so serving never asks.")
    split = split_examples(
        examples, config.validation_fraction, config.seed, config.max_examples, config.max_validation
    )
    base = config.base_name()
    root = config.adapter_root()

    from transformers import set_seed

    say(f"Loading base model {base} …")
    model, tokenizer = registry.load_base(base, Path(settings.MEDBOT_MODEL_CACHE), dtype="float32")
    targets = registry.lora_targets(model.config.model_type)
    layers = adapted_layers(model.config.num_hidden_layers, config.top_layers)
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
    with _sigterm_raises(), _torch_threads(config.threads or available_cores()):
        try:
            if final.exists():
                raise FileExistsError(f"{final} already exists (left by another database?); move it away first")
            root.mkdir(parents=True, exist_ok=True)
            scratch = Path(tempfile.mkdtemp(prefix=f".{training_run.version}-", dir=root))
            set_seed(config.seed)  # before get_peft_model: the LoRA A matrices start random
            history = _History(say)
            peft_model = _peft_model(model, targets, layers, config)
            trainable, total = peft_model.get_nb_trainable_parameters()
            dropped = dropped_train + dropped_validation
            say(
                f"Run {training_run.pk}: {len(train_set)} training / {len(validation_set)} validation examples"
                + (f" ({dropped} dropped: prompt longer than {config.max_length} tokens)" if dropped else "")
                + f", LoRA r={config.rank} alpha={config.alpha} on {', '.join(targets)} of layers "
                f"{layers[0]}-{layers[-1]} ({trainable / 1e6:.2f}M of {total / 1e6:.0f}M parameters trainable), "
                f"{torch_threads()} threads"
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
        training_run.evaluation = _evaluation(peft_model, tokenizer, config, say)
        training_run.save(update_fields=["evaluation"])
    if config.activate:
        try:
            training_run.activate(force=bool(config.force), reason=config.force, by="manage.py train --force")
        except ActivationRefused as refusal:
            say(f"Not activated: {refusal}")
    return training_run


def _evaluation(peft_model: Any, tokenizer: PreTrainedTokenizerBase, config: TrainConfig, say: Progress) -> dict:
    """The held-out comparison with the base model, or a record of why there is none."""
    if not config.eval_questions:
        return {"verdict": {"beats_base": False, "reasons": ["not evaluated (--eval-questions 0)"]}}
    questions = evaluation_questions(config.eval_questions, config.seed)
    if not questions:
        reason = "no held-out passage to ask about: import a knowledge source (make import-medquad)"
        say(f"Not evaluated: {reason}.")
        return {"verdict": {"beats_base": False, "reasons": [reason]}}
    try:
        return evaluate(peft_model, tokenizer, questions, say)
    except KeyboardInterrupt:
        say("Evaluation stopped: the adapter is kept but counts as not evaluated.")
        return {"verdict": {"beats_base": False, "reasons": ["the evaluation was stopped"]}}


def available_cores() -> int:
    """CPUs this process may run on (a container's limit, not the host's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def adapted_layers(count: int, share: float) -> list[int]:
    """The top ``share`` of ``count`` layers (at least one). Gradients stop at the lowest adapted
    layer, so adapting the top half of SmolLM2's 30 layers saves most of the backward pass below."""
    keep = max(1, round(count * share))
    return list(range(count - keep, count))


def _peft_model(model: Any, targets: list[str], layers: list[int], config: TrainConfig) -> Any:
    from peft import LoraConfig, get_peft_model
    from transformers.pytorch_utils import Conv1D

    # GPT-2 stores its projections transposed (Conv1D); PEFT must know to match the weights.
    fan_in_fan_out = any(isinstance(m, Conv1D) for n, m in model.named_modules() if n.rsplit(".", 1)[-1] in targets)
    lora = LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=targets,
        layers_to_transform=layers,
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
        train_sampling_strategy="group_by_length",  # similar lengths per batch: less padding, all of it compute
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
    lines.extend(evaluation_lines(training_run.evaluation))
    if training_run.adapter_path:
        size = (training_run.adapter_size_bytes or 0) / 1e6
        state = "active" if training_run.active else "not active (activate in the admin, or train with --activate)"
        folder = resolve_adapter_path(training_run.adapter_path)
        lines.append(f"adapter {folder} · {size:.1f} MB · {state}")
    if training_run.notes:
        lines.append(training_run.notes.splitlines()[0])
    return "\n".join(lines)


def evaluation_lines(evaluation: dict[str, Any]) -> list[str]:
    """The evaluation as a few lines: base against adapter, and the verdict."""
    verdict = evaluation.get("verdict") or {}
    lines = []
    if "base" in evaluation and "adapter" in evaluation:
        lines.append(f"held-out evaluation, {evaluation['questions']} questions (base → adapter):")
        for key, label, form in (
            ("pass_rate", "gate pass rate", "{:.0%}"),
            ("unsupported_share", "unsupported sentences", "{:.1%}"),
            ("rouge_l", "ROUGE-L", "{:.3f}"),
        ):
            before, after = evaluation["base"][key], evaluation["adapter"][key]
            lines.append(f"  {label}: {form.format(before)} → {form.format(after)}")
    if verdict.get("beats_base"):
        lines.append("the adapter beats the base model on every measure")
    else:
        lines.append("the adapter does not beat the base: " + "; ".join(verdict.get("reasons") or ["not evaluated"]))
    return lines

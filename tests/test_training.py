"""LoRA training on a tiny GPT-2: the data the model sees, the run record, the adapter lifecycle,
and running servers switching to (and back from) a newly activated adapter."""

from __future__ import annotations

import os
import signal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from chat.models import Conversation
from chat.services import ask
from inference import engine
from inference.prompting import build_messages, render
from training import pipeline
from training.models import TrainingExample, TrainingRun
from training.pipeline import IGNORE_INDEX, PadCollator, TrainConfig, encode_example, split_examples

# Questions and answers in the tiny tokenizer's vocabulary (tests/tiny_model.py), so no word is <unk>.
QUESTIONS = ["what are the symptoms of asthma", "how do i lower my blood pressure", "what helps a headache"]
PREFIXES = ["", "so ", "and ", "now "]
ANSWERS = [
    "asthma is a long term condition that affects the airways and can cause wheezing coughing and breathlessness",
    "high blood pressure often has no symptoms so have it checked regularly",
    "drink plenty of water rest and take simple pain relief if you need it",
    "a headache is usually not serious but get help if it is sudden and severe",
]


@pytest.fixture
def knowledge(db) -> None:
    """Curated entries: the model only runs for questions the knowledge base can ground, and
    training prompts every example with the passages retrieval finds for it, as serving does."""
    from inference.models import FallbackRule

    FallbackRule.objects.create(title="Headache", triggers="headache", answer="Rest and water help most headaches.")
    FallbackRule.objects.create(title="Asthma", triggers="asthma", answer="Asthma narrows the airways.")
    FallbackRule.objects.create(
        title="Blood pressure", triggers="blood pressure", answer="Have your blood pressure checked regularly."
    )


@pytest.fixture
def examples(knowledge) -> list[TrainingExample]:
    return [
        # Twelve different questions without numbers in them: "asthma 3" would name another topic.
        TrainingExample.objects.create(question=f"{PREFIXES[i // 3]}{QUESTIONS[i % 3]}", answer=ANSWERS[i % 4])
        for i in range(12)
    ]


@pytest.fixture
def tokenizer(tiny_gpt2):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_gpt2)


def quick(tiny_gpt2: Path, **overrides: object) -> TrainConfig:
    """A few steps on the tiny model: seconds, not minutes."""
    options = {"base": str(tiny_gpt2), "max_steps": 4, "batch_size": 4, "evaluations": 2, "progress_bar": False}
    if overrides.get("activate"):
        # No knowledge passages to hold out here, so no evaluation: activating needs the override.
        options["force"] = "test run: nothing to evaluate against"
    return TrainConfig(**{**options, **overrides})


# --- what the model sees ----------------------------------------------------------------------


def test_labels_mask_the_prompt_and_keep_the_answer_and_its_end_token(tokenizer):
    encoded = encode_example(tokenizer, QUESTIONS[0], ANSWERS[0], max_length=512)
    # The prompt is the text the engine sends for the same question (no history, no grounding).
    prompt = render(tokenizer, build_messages(tokenizer, QUESTIONS[0]), add_generation_prompt=True)
    prompt_length = len(tokenizer(prompt)["input_ids"])
    assert encoded["input_ids"][:prompt_length] == tokenizer(prompt)["input_ids"]
    assert encoded["labels"][:prompt_length] == [IGNORE_INDEX] * prompt_length
    answer_labels = encoded["labels"][prompt_length:]
    assert answer_labels == encoded["input_ids"][prompt_length:]
    assert tokenizer.decode(answer_labels) == f"{ANSWERS[0]} {tokenizer.eos_token}"


def test_labels_follow_the_chat_template_where_the_tokenizer_has_one(tokenizer):
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tokenizer.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }} {{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant {% endif %}"
    )
    encoded = encode_example(tokenizer, QUESTIONS[1], ANSWERS[1], max_length=512)
    answer_ids = [label for label in encoded["labels"] if label != IGNORE_INDEX]
    # Loss on the answer and the template's end-of-turn marker, on nothing of the prompt.
    assert tokenizer.decode(answer_ids) == f"{ANSWERS[1]} <|im_end|>"
    masked = encoded["input_ids"][: len(encoded["input_ids"]) - len(answer_ids)]
    assert tokenizer.decode(masked).endswith(f"{QUESTIONS[1]} <|im_end|> <|im_start|> assistant")


def test_long_answers_are_cut_at_max_length_and_prompts_that_do_not_fit_are_dropped(tokenizer):
    prompt_length = encode_example(tokenizer, QUESTIONS[0], ANSWERS[0], 512)["labels"].count(IGNORE_INDEX)
    cut = encode_example(tokenizer, QUESTIONS[0], ANSWERS[0], max_length=prompt_length + 3)
    assert len(cut["input_ids"]) == prompt_length + 3
    assert cut["labels"][-3:] == cut["input_ids"][-3:]
    assert encode_example(tokenizer, QUESTIONS[0], ANSWERS[0], max_length=prompt_length) is None


def test_padding_is_left_out_of_attention_and_loss():
    batch = PadCollator(pad_token_id=0)(
        [{"input_ids": [5, 6, 7], "labels": [IGNORE_INDEX, 6, 7]}, {"input_ids": [8], "labels": [8]}]
    )
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 6, 7], [8, IGNORE_INDEX, IGNORE_INDEX]]


def test_the_validation_split_is_seeded_and_never_empty():
    pairs = [(f"q{i}", f"a{i}") for i in range(25)]
    first = split_examples(pairs, 0.1, seed=7)
    assert len(first.validation) == 2 and len(first.train) == 23
    assert first == split_examples(pairs, 0.1, seed=7)
    assert first.validation != split_examples(pairs, 0.1, seed=8).validation
    assert not set(first.validation) & set(first.train)
    small = split_examples(pairs[:3], 0.1, seed=7)
    assert len(small.validation) == 1 and len(small.train) == 2
    assert len(split_examples(pairs, 0.1, seed=7, limit=10).train) == 9


def test_training_without_enough_examples_is_refused_before_any_run_is_recorded(db, tiny_gpt2):
    TrainingExample.objects.create(question="what helps a headache", answer=ANSWERS[3])
    TrainingExample.objects.create(question="disabled", answer="x", enabled=False)
    with pytest.raises(CommandError, match="at least 2 examples"):
        call_command("train", "--base", str(tiny_gpt2), "--no-progress", stdout=StringIO())
    assert not TrainingRun.objects.exists()


def test_bad_options_are_refused_before_anything_is_loaded(db):
    with pytest.raises(CommandError, match="rank and alpha must be at least 1"):
        call_command("train", "--base", "no-such-model", "--rank", "0", stdout=StringIO())
    assert not TrainingRun.objects.exists()


# --- real (tiny) training runs ----------------------------------------------------------------


@pytest.fixture
def serving(settings, tiny_gpt2, alice):
    """A running engine on the tiny model, as a server worker has one."""
    settings.MEDBOT_LOAD_MODEL = True
    settings.MEDBOT_BASE_MODEL = str(tiny_gpt2)
    settings.MEDBOT_DTYPE = "float32"
    settings.MEDBOT_MAX_NEW_TOKENS = 8
    manager = engine.get_manager()
    manager.start(wait=True)
    return manager


def reload_if_changed(manager: engine.EngineManager, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a worker does on its next request after ADAPTER_CHECK_SECONDS: notice and reload."""
    monkeypatch.setattr(engine, "ADAPTER_CHECK_SECONDS", 0.0)
    manager.get()
    manager._loading_thread.join()


@pytest.mark.slow
def test_it_trains_activates_and_the_engine_answers_with_the_new_adapter(
    examples, knowledge, serving, settings, alice, monkeypatch
):
    conversation = Conversation.objects.create(owner=alice)
    assert ask(conversation, "what helps a headache").adapter_version == "base"
    out = StringIO()
    call_command(
        "train", "--max-steps", "4", "--batch-size", "4", "--lr", "1e-2", "--activate", "--no-progress", stdout=out
    )
    run = TrainingRun.objects.get()
    # Nothing held out to evaluate on (no imported knowledge): not activated without an override.
    assert run.status == TrainingRun.Status.SUCCEEDED and not run.active
    assert "Not activated" in out.getvalue() and "not evaluated" not in run.activation_override
    run.activate(force=True, reason="tiny model, no knowledge to evaluate on", by="test")
    run.refresh_from_db()
    assert run.active
    assert run.base_model == str(serving.status()["base_model"])
    assert run.adapter_path == run.version == f"run-{run.pk}"
    folder = Path(settings.MEDBOT_ADAPTER_DIR) / run.version
    assert (folder / "adapter_config.json").exists()
    assert run.adapter_size_bytes == sum(p.stat().st_size for p in folder.iterdir())
    assert all(p.stat().st_mode & 0o444 == 0o444 for p in [folder, *folder.iterdir()])  # workers may be other users
    assert sorted(os.listdir(settings.MEDBOT_ADAPTER_DIR)) == [run.version]  # no scratch folder left behind
    assert run.example_count == 12 and run.target_modules == ["c_attn", "c_proj"]
    assert run.config["max_steps"] == 4 and run.config["learning_rate"] == 1e-2
    assert run.duration_seconds > 0 and run.finished_at is not None
    assert run.validation_loss == run.loss_history[-1]["eval_loss"]
    assert run.train_loss == run.loss_history[-1]["train_loss"]
    assert "validation loss" in out.getvalue() and f"Run {run.pk} (run-{run.pk}): succeeded" in out.getvalue()

    reload_if_changed(serving, monkeypatch)
    message = ask(conversation, "what are the symptoms of asthma")
    assert message.adapter_version == run.version
    assert serving.status()["adapter_version"] == run.version


@pytest.mark.slow
def test_evaluations_record_train_and_validation_loss_and_the_validation_loss_falls(examples, tiny_gpt2):
    run = pipeline.run(quick(tiny_gpt2, max_steps=10, evaluations=3, learning_rate=1e-2, rank=8))
    # Every 4 steps, and at the last step although 10 is not a multiple of 4.
    assert [h["step"] for h in run.loss_history] == [0, 4, 8, 10]
    assert run.loss_history[0]["train_loss"] is None  # the baseline, before any step
    assert all(h["train_loss"] is not None and h["train_loss"] > 0 for h in run.loss_history[1:])
    assert run.train_loss == run.loss_history[-1]["train_loss"]
    assert run.loss_history[-1]["eval_loss"] < run.loss_history[0]["eval_loss"]


@pytest.mark.slow
def test_the_same_seed_and_data_give_the_same_validation_loss(examples, tiny_gpt2):
    first = pipeline.run(quick(tiny_gpt2, seed=3))
    second = pipeline.run(quick(tiny_gpt2, seed=3))
    other = pipeline.run(quick(tiny_gpt2, seed=4))
    assert first.validation_loss == second.validation_loss
    assert first.loss_history == second.loss_history
    assert other.validation_loss != first.validation_loss


def stop_training_at_step(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    from transformers import Trainer

    step = Trainer.training_step
    calls = []

    def failing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise error
        return step(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "training_step", failing)


def sigterm_while_saving(monkeypatch: pytest.MonkeyPatch) -> None:
    from peft import PeftModel

    def half_written(self, folder, *args, **kwargs):
        (Path(folder) / "adapter_model.safetensors").write_bytes(b"\0" * 100)
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(PeftModel, "save_pretrained", half_written)


def interrupt_after_the_rename(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(folder):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "stored_adapter_path", interrupted)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stop", "status", "note"),
    [
        (lambda mp: stop_training_at_step(mp, KeyboardInterrupt()), "interrupted", "Interrupted by Ctrl-C"),
        (lambda mp: stop_training_at_step(mp, RuntimeError("out of memory")), "failed", "RuntimeError: out of memory"),
        (sigterm_while_saving, "interrupted", "Interrupted by SIGTERM"),
        (interrupt_after_the_rename, "interrupted", "Interrupted by Ctrl-C"),
    ],
    ids=["ctrl-c-mid-training", "error-mid-training", "sigterm-while-saving", "ctrl-c-after-rename"],
)
def test_a_stopped_run_leaves_no_adapter_and_the_active_one_stays_active(
    examples, tiny_gpt2, settings, monkeypatch, stop, status, note
):
    serving = TrainingRun.objects.create(base_model="x", status=TrainingRun.Status.SUCCEEDED, adapter_path="run-0")
    serving.activate(force=True, reason="the adapter in service")
    handler = signal.getsignal(signal.SIGTERM)
    stop(monkeypatch)
    with pytest.raises((KeyboardInterrupt, RuntimeError)):
        pipeline.run(quick(tiny_gpt2, activate=True))
    run = TrainingRun.objects.exclude(pk=serving.pk).get()
    assert run.status == status and not run.active and run.adapter_path == ""
    assert run.notes.startswith(note)
    assert TrainingRun.objects.get(active=True) == serving
    assert os.listdir(settings.MEDBOT_ADAPTER_DIR) == []  # neither run-<pk> nor a half-written scratch folder
    assert signal.getsignal(signal.SIGTERM) is handler


@pytest.mark.slow
def test_the_train_command_reports_an_interrupt_without_a_traceback(examples, tiny_gpt2, monkeypatch):
    stop_training_at_step(monkeypatch, KeyboardInterrupt())
    with pytest.raises(CommandError, match="no adapter was saved") as raised:
        call_command("train", "--base", str(tiny_gpt2), "--max-steps", "3", "--no-progress", stdout=StringIO())
    assert raised.value.returncode == 130
    assert TrainingRun.objects.get().status == TrainingRun.Status.INTERRUPTED


@pytest.mark.slow
def test_activating_an_older_run_rolls_the_engine_back(examples, knowledge, serving, tiny_gpt2, alice, monkeypatch):
    older = pipeline.run(quick(tiny_gpt2, activate=True, seed=1))
    newer = pipeline.run(quick(tiny_gpt2, activate=True, seed=2))
    assert list(TrainingRun.objects.filter(active=True)) == [newer]
    reload_if_changed(serving, monkeypatch)
    assert serving.get().version == newer.version

    older.activate(force=True, reason="roll back")
    reload_if_changed(serving, monkeypatch)
    assert serving.get().version == older.version
    message = ask(Conversation.objects.create(owner=alice), "what helps a headache")
    assert message.adapter_version == older.version


@pytest.mark.slow
def test_it_trains_a_model_cached_from_gguf_whose_config_still_names_the_quantisation(examples, tiny_gpt2, tmp_path):
    # The SmolLM2 cache is de-quantised safetensors whose config.json keeps the GGUF quantization_config.
    import json
    import shutil

    cached = Path(shutil.copytree(tiny_gpt2, tmp_path / "from-gguf"))
    config = json.loads((cached / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "gguf", "gguf_file": "model.gguf", "dequantize": False}
    (cached / "config.json").write_text(json.dumps(config))
    run = pipeline.run(quick(cached, max_steps=2))
    assert run.status == TrainingRun.Status.SUCCEEDED


@pytest.mark.slow
def test_a_run_never_overwrites_an_adapter_folder_it_did_not_write(examples, tiny_gpt2, settings):
    earlier = TrainingRun.objects.create(base_model="x")
    taken = Path(settings.MEDBOT_ADAPTER_DIR) / f"run-{earlier.pk + 1}"
    taken.mkdir(parents=True)
    (taken / "adapter_config.json").write_text("{}")
    with pytest.raises(FileExistsError):
        pipeline.run(quick(tiny_gpt2))
    run = TrainingRun.objects.get(pk=earlier.pk + 1)
    assert run.status == TrainingRun.Status.FAILED and "already exists" in run.notes
    assert (taken / "adapter_config.json").read_text() == "{}"
    assert sorted(os.listdir(settings.MEDBOT_ADAPTER_DIR)) == [taken.name]


def test_a_smollm2_cache_with_the_stale_gguf_marker_is_rewritten_without_it(tmp_path):
    import json

    from inference import registry

    cache = registry.smollm2_cache_dir(tmp_path)
    cache.mkdir(parents=True)
    (cache / "model.safetensors").write_bytes(b"")
    (cache / "tokenizer.json").write_text("{}")
    marked = {"model_type": "llama", "quantization_config": {"quant_method": "gguf", "gguf_file": "x.gguf"}}
    (cache / "config.json").write_text(json.dumps(marked))
    assert registry.prepare_smollm2_cache(tmp_path) == cache
    assert json.loads((cache / "config.json").read_text()) == {"model_type": "llama"}
    assert not registry.forget_stale_gguf_marker(cache / "config.json")  # nothing left to remove

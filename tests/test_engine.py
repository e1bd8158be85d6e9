"""The engine on a tiny GPT-2: load, LoRA on c_attn/c_proj, merge, generate, stream, fall back."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from inference import adapters, engine, pipeline
from inference.engine import GenerationRequest, GenerationStats, LoraEngine
from inference.models import FallbackRule

pytestmark = pytest.mark.slow


def make_adapter(base: Path, folder: Path, seed: int = 1) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from inference.registry import lora_targets

    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(
        r=4, lora_alpha=8, target_modules=lora_targets("gpt2"), fan_in_fan_out=True, task_type="CAUSAL_LM"
    )
    peft_model = get_peft_model(model, config)
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)  # a trained adapter is never all zeros
    peft_model.save_pretrained(folder)
    return folder


def test_it_loads_a_local_model_and_streams_text(tiny_gpt2, tmp_path):
    loaded = LoraEngine.load(str(tiny_gpt2), None, tmp_path)
    stats = GenerationStats()
    pieces = list(loaded.stream(GenerationRequest("what are the symptoms of asthma", max_new_tokens=12), stats))
    assert pieces and "".join(pieces).strip()
    assert 0 < stats.tokens <= 12
    assert stats.stopped_by in {"eos", "max_tokens"}
    assert loaded.version == "base"


def test_it_attaches_a_lora_adapter_on_gpt2_projections_and_merges_it(tiny_gpt2, tmp_path):
    import torch

    adapter_dir = make_adapter(tiny_gpt2, tmp_path / "adapter")
    config = (adapter_dir / "adapter_config.json").read_text()
    assert '"c_attn"' in config and '"c_proj"' in config
    base = LoraEngine.load(str(tiny_gpt2), None, tmp_path)
    tuned = LoraEngine.load(str(tiny_gpt2), adapters.AdapterRef("run-7", str(adapter_dir)), tmp_path)
    assert tuned.version == "run-7"
    # Merged: plain modules, no LoRA layers left at inference time.
    assert not any("lora" in name for name, _ in tuned.model.named_modules())
    ids = base.tokenizer("asthma is a long term condition", return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        assert not torch.allclose(base.model(ids).logits, tuned.model(ids).logits)


def test_the_manager_loads_in_the_background_and_reports_ready(tiny_gpt2, settings, db):
    settings.MEDBOT_LOAD_MODEL = True
    settings.MEDBOT_BASE_MODEL = str(tiny_gpt2)
    settings.MEDBOT_DTYPE = "float32"
    manager = engine.get_manager()
    assert manager.state == "disabled"
    manager.start(wait=True)
    assert manager.status()["state"] == "ready"
    assert manager.get() is not None


def test_a_missing_model_leaves_the_manager_failed_and_answers_still_come(settings, db):
    settings.MEDBOT_LOAD_MODEL = True
    settings.MEDBOT_BASE_MODEL = "no-such-model"
    manager = engine.get_manager()
    manager.start(wait=True)
    assert manager.status()["state"] == "failed"
    assert "no-such-model" in manager.status()["error"]
    result = pipeline.answer("what are the symptoms of asthma?")
    assert result.source in {"rule", "unavailable"}
    assert result.disclaimer


def test_the_manager_picks_up_a_newly_activated_adapter(tiny_gpt2, settings, db, tmp_path, monkeypatch):
    settings.MEDBOT_LOAD_MODEL = True
    settings.MEDBOT_BASE_MODEL = str(tiny_gpt2)
    settings.MEDBOT_DTYPE = "float32"
    manager = engine.get_manager()
    manager.start(wait=True)
    assert manager.get().version == "base"
    adapter_dir = make_adapter(tiny_gpt2, tmp_path / "adapter")
    settings.MEDBOT_ADAPTER = str(adapter_dir)
    monkeypatch.setattr(engine, "ADAPTER_CHECK_SECONDS", 0.0)
    manager.get()  # notices the change and reloads in the background; the old engine serves meanwhile
    manager._loading_thread.join()
    assert manager.get().version == "path:adapter"


@pytest.fixture
def asthma_rule(db, settings):
    # BM25 needs a few documents to tell topics apart; scores are lower in so small a corpus.
    settings.MEDBOT_RULE_MIN_SCORE = 1.0
    for title, words in [("Sleep", "insomnia\nsleep"), ("Back pain", "back pain\nlumbago"), ("Acne", "spots\nacne")]:
        FallbackRule.objects.create(title=title, triggers=words, answer=f"About {title.lower()}.")
    return FallbackRule.objects.create(
        title="Asthma",
        triggers="asthma\nwheezing\ninhaler",
        answer="Asthma is a long-term condition of the airways. See a doctor if your inhaler is not helping.",
    )


@pytest.fixture
def ready_engine(tiny_gpt2, settings, db):
    settings.MEDBOT_LOAD_MODEL = True
    settings.MEDBOT_BASE_MODEL = str(tiny_gpt2)
    settings.MEDBOT_DTYPE = "float32"
    settings.MEDBOT_MAX_NEW_TOKENS = 24
    manager = engine.get_manager()
    manager.start(wait=True)
    return manager.get()


def test_a_failing_model_falls_back_to_the_rules(ready_engine, asthma_rule, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(ready_engine.model, "forward", broken)
    result = pipeline.answer("what are the symptoms of asthma?")
    assert result.source == "rule"
    assert result.text == asthma_rule.answer
    assert "model error" in result.fallback_reason
    assert "answering from the rules" in caplog.text


def test_a_too_slow_model_is_cut_off_and_falls_back_to_the_rules(ready_engine, asthma_rule, settings, monkeypatch):
    settings.MEDBOT_GENERATION_TIMEOUT = 0.3
    settings.MEDBOT_MAX_NEW_TOKENS = 200
    forward = ready_engine.model.forward

    def slow_forward(*args, **kwargs):
        time.sleep(0.1)
        return forward(*args, **kwargs)

    monkeypatch.setattr(ready_engine.model, "forward", slow_forward)
    started = time.monotonic()
    result = pipeline.answer("what are the symptoms of asthma?")
    assert time.monotonic() - started < 3
    assert result.source == "rule"
    assert result.fallback_reason == "quality gate: too short"


def test_model_answers_that_pass_the_gate_are_used_and_trimmed(ready_engine, asthma_rule, monkeypatch):
    def fake_stream(request, stats):
        stats.tokens = 30
        stats.stopped_by = "max_tokens"
        yield "Asthma narrows the airways and often causes wheezing and coughing. "
        yield "A doctor can check your inhaler technique and adjust"

    monkeypatch.setattr(ready_engine, "stream", fake_stream)
    result = pipeline.answer("what are the symptoms of asthma?")
    assert result.source == "model"
    assert result.text == "Asthma narrows the airways and often causes wheezing and coughing."
    assert result.tokens == 30
    assert result.adapter_version == "base"
    assert result.matched_rule == "Asthma"  # used as grounding


def test_the_grounding_entry_reaches_the_prompt(ready_engine, asthma_rule):
    request = GenerationRequest("what are the symptoms of asthma?", grounding=asthma_rule.answer)
    text = ready_engine.prompt_text(request)
    assert asthma_rule.answer in text
    assert text.index(asthma_rule.answer) < text.index("what are the symptoms of asthma?")

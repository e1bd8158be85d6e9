"""The engine on a tiny GPT-2: load, LoRA on c_attn/c_proj, merge, stream, the manager's states,
and the pipeline falling back to the rules when the model fails or is too slow."""

from __future__ import annotations

import json
import time
from io import StringIO
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.core.management import call_command

from inference import adapters, engine, pipeline
from inference.engine import EngineConfig, GenerationError, GenerationRequest, GenerationStats
from inference.models import FallbackRule
from tests.tiny_model import load_engine, make_adapter

pytestmark = pytest.mark.slow

__all__ = ["make_adapter"]  # tests/test_evaluation.py imports it from here


def test_it_loads_a_local_model_and_streams_text_returning_the_stop_reason(tiny_gpt2, tmp_path):
    loaded = load_engine(tiny_gpt2, tmp_path)
    stream = loaded.stream(GenerationRequest("what are the symptoms of asthma", max_new_tokens=12))
    pieces = list(stream)
    assert pieces and "".join(pieces).strip()
    assert 0 < stream.stats.tokens <= 12
    assert stream.stats.stopped_by in {"eos", "max_tokens"}
    assert loaded.version == "base"


def test_the_older_stream_call_fills_the_stats_it_is_given(tiny_gpt2, tmp_path):
    loaded = load_engine(tiny_gpt2, tmp_path)
    stats = GenerationStats()
    stream = loaded.stream(GenerationRequest("what helps a headache", max_new_tokens=8), stats)
    text = "".join(stream)
    assert stream.stats is stats
    assert stats.stopped_by in {"eos", "max_tokens"} and 0 < stats.tokens <= 8
    whole = loaded.generate(GenerationRequest("what helps a headache", max_new_tokens=8))
    assert whole.text == text and whole.stopped_by == stats.stopped_by


def test_it_attaches_a_lora_adapter_on_gpt2_projections_and_merges_it(tiny_gpt2, tmp_path):
    import torch

    adapter_dir = make_adapter(tiny_gpt2, tmp_path / "adapter")
    config = (adapter_dir / "adapter_config.json").read_text()
    assert '"c_attn"' in config and '"c_proj"' in config
    base = load_engine(tiny_gpt2, tmp_path)
    tuned = load_engine(tiny_gpt2, tmp_path, adapter=adapters.AdapterRef("run-7", str(adapter_dir)))
    assert tuned.version == "run-7"
    # Merged: plain modules, no LoRA layers left at inference time.
    assert not any("lora" in name for name, _ in tuned.model.named_modules())
    ids = base.tokenizer("asthma is a long term condition", return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        assert not torch.allclose(base.model(ids).logits, tuned.model(ids).logits)


def test_a_too_slow_model_is_stopped_at_its_deadline(tiny_gpt2, tmp_path, monkeypatch):
    loaded = load_engine(tiny_gpt2, tmp_path)
    forward = loaded.model.forward

    def slow_forward(*args, **kwargs):
        time.sleep(0.1)
        return forward(*args, **kwargs)

    monkeypatch.setattr(loaded.model, "forward", slow_forward)
    started = time.monotonic()
    stream = loaded.stream(GenerationRequest("what are the symptoms of asthma", max_new_tokens=200, timeout=0.5))
    list(stream)
    assert time.monotonic() - started < 3
    assert stream.stats.stopped_by == "timeout"
    assert stream.stats.tokens < 200


def test_a_failing_model_raises_the_engines_one_error_type(tiny_gpt2, tmp_path, monkeypatch):
    loaded = load_engine(tiny_gpt2, tmp_path)

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(loaded.model, "forward", broken)
    stream = loaded.stream(GenerationRequest("what are the symptoms of asthma"))
    with pytest.raises(GenerationError, match="out of memory"):
        list(stream)
    assert stream.stats.stopped_by == "error"


# --- settings → engine options --------------------------------------------------------------


def test_engine_options_come_from_the_settings_in_one_place(settings):
    settings.MEDBOT_DTYPE = "float32"
    settings.MEDBOT_QUANTIZE = "int8"
    settings.MEDBOT_MAX_BATCH = 3
    settings.MEDBOT_BATCH_THREADS = 2
    settings.MEDBOT_HISTORY_TOKENS = 100
    config = EngineConfig.from_settings()
    assert (config.kind, config.dtype, config.quantize) == ("local", "float32", "int8")
    assert (config.max_batch, config.batch_threads, config.history_tokens) == (3, 2, 100)
    assert EngineConfig.from_settings(quantize="none").quantize == "none"  # benchmarks' variants


def test_auto_picks_fp32_on_a_cpu_without_fast_bf16_and_keeps_explicit_values(settings, monkeypatch):
    from inference.engine import cpu

    monkeypatch.setattr(cpu, "capability", lambda: "AVX2")
    monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset({"avx2", "fma", "f16c"}))
    settings.MEDBOT_DTYPE, settings.MEDBOT_QUANTIZE = "auto", "auto"
    config = EngineConfig.from_settings()
    assert (config.dtype, config.quantize) == ("float32", "none")
    settings.MEDBOT_DTYPE, settings.MEDBOT_QUANTIZE = "bfloat16", "auto"
    assert (EngineConfig.from_settings().dtype, EngineConfig.from_settings().quantize) == ("bfloat16", "none")


def test_auto_picks_bf16_and_int4_where_avx512_has_native_bf16(settings, monkeypatch):
    from inference.engine import cpu

    monkeypatch.setattr(cpu, "capability", lambda: "AVX512")
    monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset({"avx2", "avx512f", "avx512_bf16"}))
    settings.MEDBOT_DTYPE, settings.MEDBOT_QUANTIZE = "auto", "auto"
    config = EngineConfig.from_settings()
    assert (config.dtype, config.quantize) == ("bfloat16", "int4")
    # int4 rounding erased a trained adapter's behaviour: with one, auto does not quantise.
    with_adapter = EngineConfig.from_settings(adapter="run-2")
    assert (with_adapter.dtype, with_adapter.quantize) == ("bfloat16", "none")
    settings.MEDBOT_QUANTIZE = "int4"  # an explicit choice is the operator's
    assert EngineConfig.from_settings(adapter="run-2").quantize == "int4"


def test_the_manager_resolves_auto_knowing_whether_an_adapter_is_active(tiny_settings, monkeypatch, tmp_path):
    from inference import adapters
    from inference.engine import cpu, manager

    monkeypatch.setattr(cpu, "auto_choice", lambda: ("float32", "int8"))
    tiny_settings.MEDBOT_DTYPE, tiny_settings.MEDBOT_QUANTIZE = "auto", "auto"
    seen = []

    def build(config, adapter):
        seen.append(config.quantize)
        return SimpleNamespace(version=adapter.version if adapter else "base", close=lambda: None)

    monkeypatch.setattr(manager, "build_engine", build)
    engines = manager.EngineManager()
    engines._load(None, lookup=False)
    engines._load(adapters.AdapterRef("run-9", str(tmp_path)), lookup=False)
    assert seen == ["int8", "none"]


# --- the manager ------------------------------------------------------------------------------


@pytest.fixture
def tiny_settings(tiny_gpt2, settings, db):
    settings.MEDBOT_LOAD_MODEL = True
    settings.MEDBOT_BASE_MODEL = str(tiny_gpt2)
    settings.MEDBOT_DTYPE = "float32"
    settings.MEDBOT_QUANTIZE = "none"
    settings.MEDBOT_MAX_NEW_TOKENS = 24
    return settings


def test_the_manager_is_off_only_when_the_model_is_switched_off(settings):
    assert engine.get_manager().state == "off"
    assert engine.get_manager().get() is None
    settings.MEDBOT_LOAD_MODEL = True
    assert engine.get_manager().state == "loading"


def test_the_manager_loads_in_the_background_and_reports_ready(tiny_settings):
    manager = engine.get_manager()
    manager.start(wait=True)
    assert manager.state == "ready"
    assert manager.public_status() == {
        "state": "ready",
        "adapter_version": "base",
        "load_seconds": pytest.approx(manager.load_seconds, abs=0.01),
    }
    assert manager.get() is not None


def test_a_missing_model_leaves_the_manager_failed_and_the_rules_answer(settings, asthma_rule):
    settings.MEDBOT_LOAD_MODEL = True
    settings.MEDBOT_BASE_MODEL = "no-such-model"
    manager = engine.get_manager()
    manager.start(wait=True)
    assert manager.state == "failed"
    assert "no-such-model" in manager.status()["error"]  # for operators and the log
    assert "no-such-model" not in str(manager.public_status())
    result = pipeline.answer("what are the symptoms of asthma?")
    assert result.source != "model"
    assert result.fallback_reason == pipeline.Fallback.MODEL_FAILED


def test_the_manager_picks_up_a_newly_activated_adapter(tiny_settings, tmp_path, monkeypatch):
    manager = engine.get_manager()
    manager.start(wait=True)
    assert manager.get().version == "base"
    adapter_dir = make_adapter(tiny_settings.MEDBOT_BASE_MODEL, tmp_path / "adapter")
    tiny_settings.MEDBOT_ADAPTER = str(adapter_dir)
    monkeypatch.setattr(engine, "ADAPTER_CHECK_SECONDS", 0.0)
    manager.get()  # notices the change and reloads in the background; the old engine serves meanwhile
    manager._loading_thread.join()
    assert manager.get().version == "path:adapter"


# --- the pipeline over the engine -------------------------------------------------------------


@pytest.fixture
def asthma_rule(db, settings):
    # BM25 needs a few documents to tell topics apart; scores are lower in so small a corpus.
    for title, words in [("Sleep", "insomnia\nsleep"), ("Back pain", "back pain\nlumbago"), ("Acne", "spots\nacne")]:
        FallbackRule.objects.create(title=title, triggers=words, answer=f"About {title.lower()}.")
    return FallbackRule.objects.create(
        title="Asthma",
        triggers="asthma\nwheezing\ninhaler",
        answer="Asthma is a long-term condition of the airways. See a doctor if your inhaler is not helping.",
    )


@pytest.fixture
def ready_engine(tiny_settings):
    manager = engine.get_manager()
    manager.start(wait=True)
    return manager.get()


def test_a_failing_model_falls_back_to_the_rules(ready_engine, asthma_rule, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(ready_engine.model, "forward", broken)
    result = pipeline.answer("what are the symptoms of asthma?")
    assert result.source != "model"
    assert result.fallback_reason == pipeline.Fallback.MODEL_ERROR
    assert "out of memory" in caplog.text


def test_a_too_slow_model_is_cut_off_and_the_rules_answer(ready_engine, asthma_rule, settings, monkeypatch):
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
    assert result.source != "model"
    assert result.fallback_reason == pipeline.Fallback.TIMEOUT  # not "too short": never cached


def test_model_answers_that_pass_the_gate_are_used_and_trimmed(fake_engine, asthma_rule):
    fake_engine.pieces = [
        "Asthma is a long-term condition of the airways. ",
        "See a doctor if your inhaler is not helping. And",
    ]
    fake_engine.tokens, fake_engine.stopped_by = 30, "max_tokens"
    result = pipeline.answer("what are the symptoms of asthma?")
    assert result.source == "model"
    assert result.text == "Asthma is a long-term condition of the airways. See a doctor if your inhaler is not helping."
    assert result.tokens == 30
    assert result.adapter_version == "fake-1"
    assert "inhaler" in fake_engine.requests[0].grounding  # the curated entry grounds the prompt


def test_the_grounding_entry_reaches_the_prompt(ready_engine, asthma_rule):
    request = GenerationRequest("what are the symptoms of asthma?", grounding=asthma_rule.answer)
    text = ready_engine.prompt_text(request)
    assert asthma_rule.answer in text
    assert text.index(asthma_rule.answer) < text.index("what are the symptoms of asthma?")


# --- auto, measured on this machine -------------------------------------------------------------


def test_timing_keeps_the_fastest_candidate_that_agrees_and_is_not_slower_than_fp32():
    from inference.engine.choice import Trial, pick

    fp32 = Trial("float32", "none", prefill_seconds=1.0, decode_tokens_per_second=20.0, agreement=1.0)
    fast_but_wrong = Trial("bfloat16", "int4", 0.3, 60.0, agreement=0.6)
    faster = Trial("bfloat16", "none", 0.6, 30.0, agreement=0.95)
    slower = Trial("float32", "int8", 3.0, 5.0, agreement=1.0)
    assert pick([fp32, fast_but_wrong, faster, slower]) == faster
    assert pick([fp32, fast_but_wrong, slower]) == fp32  # never slower than plain fp32
    # A faster decoder that reads prompts twice as slowly keeps people waiting longer for the
    # first sentence (AVX2, measured: fp32 1.2 s + 12.8 tok/s against bf16 + int4 2.3 s + 15.8).
    slow_reader = Trial("bfloat16", "int4", prefill_seconds=2.3, decode_tokens_per_second=15.8, agreement=0.96)
    assert pick([Trial("float32", "none", 1.2, 12.8, 1.0), slow_reader]).dtype == "float32"


def test_prepare_model_times_the_candidates_once_and_auto_uses_the_result(tiny_settings, tmp_path, settings):
    from inference.engine import choice

    settings.MEDBOT_MODEL_CACHE = str(tmp_path / "cache")
    settings.MEDBOT_DTYPE, settings.MEDBOT_QUANTIZE = "auto", "auto"
    out = StringIO()
    call_command("prepare_model", stdout=out)
    text = out.getvalue()
    assert "Timing the engine's settings" in text and "float32 + none: prefill" in text
    record = json.loads(next((Path(settings.MEDBOT_MODEL_CACHE) / "engine-choice").glob("*.json")).read_text())
    assert record["trials"][0]["dtype"] == "float32" and record["trials"][0]["agreement"] == 1.0
    assert record["cpu"]["model"] and record["adapter"] == "base"
    chosen = (record["chosen"]["dtype"], record["chosen"]["quantize"])
    config = EngineConfig.from_settings()
    assert (config.dtype, config.quantize) == chosen
    again = StringIO()
    call_command("prepare_model", stdout=again)
    assert "timed before" in again.getvalue()
    # Another adapter has not been timed: the rule of thumb, which never quantises an adapter.
    assert choice.cached(Path(settings.MEDBOT_MODEL_CACHE), settings.MEDBOT_BASE_MODEL, "run-7") is None
    assert EngineConfig.from_settings(adapter="run-7").quantize == "none"


def test_with_an_adapter_only_unquantised_candidates_are_timed(tmp_path, monkeypatch):
    from inference.engine import choice

    timed = []

    def fake_measure(config, adapter, reference):
        timed.append((config.dtype, config.quantize))
        return choice.Trial(config.dtype, config.quantize, 0.5, 20.0, 1.0), [1, 2, 3]

    monkeypatch.setattr(choice, "measure", fake_measure)
    config = EngineConfig(base_model="tiny", cache_root=tmp_path, dtype="float32", quantize="none")
    choice.choose(config, adapters.AdapterRef("run-3", str(tmp_path)), say=lambda line: None)
    assert timed == [("float32", "none"), ("bfloat16", "none")]
    timed.clear()
    choice.choose(config, None, say=lambda line: None)
    assert ("bfloat16", "int4") in timed


def test_prepare_model_without_a_database_prepares_the_cache_and_skips_the_timing(tiny_settings, tmp_path, monkeypatch):
    """The image build runs prepare_model with no database: the weights, not the timing."""
    from django.db import OperationalError

    def no_database():
        raise OperationalError("no such table: training_trainingrun")

    monkeypatch.setattr(adapters, "active_adapter", no_database)
    tiny_settings.MEDBOT_MODEL_CACHE = str(tmp_path / "cache")
    tiny_settings.MEDBOT_DTYPE = "auto"
    out = StringIO()
    call_command("prepare_model", stdout=out)
    assert "Model ready" in out.getvalue() and "not timed: the database is not ready" in out.getvalue()


def test_the_timed_choice_is_kept_per_cpu_capability(tmp_path, monkeypatch):
    from inference.engine import choice, cpu

    monkeypatch.setattr(cpu, "cpu_model", lambda: "Some Xeon")
    monkeypatch.setattr(cpu, "capability", lambda: "AVX512")
    native = choice.choice_file(tmp_path, "smollm2", "base")
    monkeypatch.setattr(cpu, "capability", lambda: "AVX2")  # the same CPU with AVX-512 hidden
    assert choice.choice_file(tmp_path, "smollm2", "base") != native

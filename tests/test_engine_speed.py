"""The engine's speed-ups keep its answers: int8/int4 weight-only layers, the converted-weights
cache, and the batcher that decodes concurrent requests in shared forward passes. Correctness
only, never timings."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from inference import registry
from inference.engine import GenerationError, GenerationRequest, GenerationStats, LoraEngine
from inference.engine.quantisation import layer_classes, quantize_weight_only
from tests.tiny_model import load_engine

pytestmark = pytest.mark.slow

QUESTIONS = [
    ("what are the symptoms of asthma", 14),
    ("how do i lower my blood pressure", 9),
    ("what helps a headache", 17),
    ("drink plenty of water rest", 5),
]


@pytest.fixture(scope="module")
def tiny_llama(tiny_gpt2: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer LLaMA-style model with tied embeddings, wide enough (64) for int4 groups of 32."""
    import shutil

    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt2)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (tiny_gpt2 / name).exists():
            shutil.copy(tiny_gpt2 / name, folder / name)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=128,  # the tokenizer's ~100 words, padded to a multiple of 8 for the int4 kernel
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def layer_kinds(engine: LoraEngine) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for module in engine.model.modules():
        name = type(module).__name__
        if "WeightOnly" in name and module is not engine.model.get_output_embeddings():
            kinds[name] = kinds.get(name, 0) + 1
    return kinds


def run(engine: LoraEngine, question: str, max_new_tokens: int, **extra: object) -> tuple[str, GenerationStats]:
    stats = GenerationStats()
    request = GenerationRequest(question, max_new_tokens=max_new_tokens, **extra)
    return "".join(engine.stream(request, stats)), stats


def slow_down(engine: LoraEngine, monkeypatch: pytest.MonkeyPatch, seconds: float = 0.02) -> None:
    """Make each forward pass take a while, so requests started together are in flight together."""
    forward = engine.model.forward

    def slow_forward(*args: object, **kwargs: object) -> object:
        time.sleep(seconds)
        return forward(*args, **kwargs)

    monkeypatch.setattr(engine.model, "forward", slow_forward)


def greedy_reference(engine: LoraEngine, request: GenerationRequest) -> list[int]:
    """The new token ids of transformers' own greedy ``generate`` (no shared-start cache, no
    batcher), with the engine's decoding rule: the answer the engine must reproduce in fp32."""
    import torch

    ids = engine.prompt_ids(request)
    with torch.inference_mode():
        output = engine.model.generate(
            **ids,
            max_new_tokens=request.max_new_tokens,
            do_sample=False,
            repetition_penalty=1.1,
            eos_token_id=sorted(engine.eos_ids),
            pad_token_id=engine.tokenizer.pad_token_id,
        )
    return output[0, ids["input_ids"].shape[1] :].tolist()


def test_the_engine_decodes_exactly_like_transformers_greedy_generate(tiny_gpt2: Path, tmp_path: Path) -> None:
    engine = load_engine(tiny_gpt2, tmp_path)
    request = GenerationRequest("what are the symptoms of asthma", max_new_tokens=20)
    reference = greedy_reference(engine, request)
    expected = engine.tokenizer.decode(reference, skip_special_tokens=True)
    text, stats = run(engine, request.question, 20)
    assert text == expected
    assert stats.tokens == len(reference)


def test_int8_weight_only_replaces_linear_and_gpt2_conv1d_layers_and_still_generates(
    tiny_gpt2: Path, tmp_path: Path
) -> None:
    from transformers.pytorch_utils import Conv1D

    engine = load_engine(tiny_gpt2, tmp_path, dtype="bfloat16", quantize="int8")
    modules = list(engine.model.modules())
    assert not any(isinstance(module, Conv1D) for module in modules)
    assert sum(type(module).__name__ == "Int8WeightOnlyLinear" for module in modules) == 2 * 4 + 1
    text, stats = run(engine, "what are the symptoms of asthma", 12)
    assert text.strip()
    assert 0 < stats.tokens <= 12


def test_int8_weight_only_layers_compute_what_the_full_precision_ones_did(tiny_gpt2: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_gpt2).eval()
    ids = torch.tensor([[3, 8, 5, 13, 21, 2]])
    with torch.inference_mode():
        before = model(ids).logits
        assert quantize_weight_only(model, "int8") == 2 * 4 + 1
        after = model(ids).logits
    # Per-channel int8 keeps each weight within half a step (max|w| / 254) of its value.
    assert torch.allclose(before, after, atol=0.05 * before.abs().max().item())
    assert (before.argmax(-1) == after.argmax(-1)).float().mean() >= 0.8


def test_concurrent_requests_each_get_their_own_unbatched_greedy_answer(
    tiny_gpt2: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alone = load_engine(tiny_gpt2, tmp_path, max_batch=1)
    expected = {question: run(alone, question, limit) for question, limit in QUESTIONS}

    batched = load_engine(tiny_gpt2, tmp_path, max_batch=8)
    slow_down(batched, monkeypatch)
    results: dict[str, tuple[str, GenerationStats]] = {}

    def ask(question: str, limit: int) -> None:
        results[question] = run(batched, question, limit)

    threads = [threading.Thread(target=ask, args=item) for item in QUESTIONS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert batched.peak_batch > 1  # they really shared forward passes
    for question, limit in QUESTIONS:
        text, stats = results[question]
        assert text == expected[question][0]
        assert stats.tokens == expected[question][1].tokens <= limit
        assert stats.stopped_by == expected[question][1].stopped_by


def test_a_request_that_joins_a_running_batch_still_gets_its_own_answer(
    tiny_gpt2: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alone = load_engine(tiny_gpt2, tmp_path, max_batch=1)
    long_expected, _ = run(alone, "what are the symptoms of asthma", 40)
    short_expected, _ = run(alone, "a headache is usually not serious but get help if it is sudden", 6)

    batched = load_engine(tiny_gpt2, tmp_path)
    slow_down(batched, monkeypatch)
    first = batched.stream(GenerationRequest("what are the symptoms of asthma", max_new_tokens=40), GenerationStats())
    pieces = [next(first), next(first)]  # the long request is mid-answer when the second arrives
    short_text, _ = run(batched, "a headache is usually not serious but get help if it is sudden", 6)
    pieces.extend(first)
    assert short_text == short_expected
    assert "".join(pieces) == long_expected
    assert batched.peak_batch == 2


def test_closing_one_stream_cancels_it_without_disturbing_the_others(
    tiny_gpt2: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alone = load_engine(tiny_gpt2, tmp_path, max_batch=1)
    expected, _ = run(alone, "how do i lower my blood pressure", 30)

    batched = load_engine(tiny_gpt2, tmp_path)
    slow_down(batched, monkeypatch)
    abandoned_request = GenerationRequest("what are the symptoms of asthma", max_new_tokens=30)
    abandoned_stats = GenerationStats()
    abandoned = batched.stream(abandoned_request, abandoned_stats)
    next(abandoned)
    kept: dict[str, str] = {}
    thread = threading.Thread(target=lambda: kept.update(text=run(batched, "how do i lower my blood pressure", 30)[0]))
    thread.start()
    time.sleep(0.1)
    abandoned.close()  # the client went away
    thread.join(timeout=60)
    assert abandoned_request.cancel.is_set()
    assert kept["text"] == expected
    deadline = time.monotonic() + 5
    while abandoned_stats.stopped_by != "cancelled" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert abandoned_stats.stopped_by == "cancelled"
    assert abandoned_stats.tokens < 30


def test_each_request_keeps_its_own_deadline_inside_a_batch(
    tiny_gpt2: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batched = load_engine(tiny_gpt2, tmp_path)
    slow_down(batched, monkeypatch, seconds=0.05)
    results: dict[str, GenerationStats] = {}

    def ask(name: str, timeout: float) -> None:
        results[name] = run(batched, "what are the symptoms of asthma", 60, timeout=timeout)[1]

    threads = [
        threading.Thread(target=ask, args=("hurried", 0.4)),
        threading.Thread(target=ask, args=("patient", 30.0)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results["hurried"].stopped_by == "timeout"
    assert results["patient"].stopped_by in {"eos", "max_tokens"}
    assert results["hurried"].tokens < results["patient"].tokens


def test_the_model_cache_config_loses_its_gguf_quantization_settings() -> None:
    from transformers import LlamaConfig

    config = LlamaConfig(quantization_config={"quant_method": "gguf", "dequantize": False})
    registry._drop_gguf_quantization(config)
    assert getattr(config, "quantization_config", None) is None


@pytest.mark.parametrize(("model", "quantize"), [("gpt2", "int8"), ("gpt2", "none"), ("llama", "int4")])
def test_a_second_load_reads_the_converted_weights_and_answers_the_same(
    tiny_gpt2: Path, tiny_llama: Path, tmp_path: Path, model: str, quantize: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inference.engine.converted import converted_file

    folder = str(tiny_gpt2 if model == "gpt2" else tiny_llama)
    first = load_engine(folder, tmp_path, dtype="bfloat16", quantize=quantize)
    converted = converted_file(folder, None, tmp_path, "bfloat16", quantize)
    assert converted is not None and converted.exists()
    assert not first.loaded_from_converted

    def no_conversion(*args: object, **kwargs: object) -> None:
        raise AssertionError("the second load converted the base model again")

    # A second load that cannot read the converted file would convert again: make that fail.
    monkeypatch.setattr(registry, "load_base", no_conversion)
    second = load_engine(folder, tmp_path, dtype="bfloat16", quantize=quantize)
    assert second.loaded_from_converted
    assert layer_kinds(second) == layer_kinds(first)
    assert run(second, "what are the symptoms of asthma", 16) == run(first, "what are the symptoms of asthma", 16)
    assert second.eos_ids == first.eos_ids
    # Rotary position frequencies are not weights: fp32 either way, or the freshly converted
    # engine drifts from the reloaded one as positions grow (seen on 300-token prompts).
    for engine in (first, second):
        frequencies = {name: b.dtype for name, b in engine.model.named_buffers() if name.endswith("inv_freq")}
        assert all(str(dtype) == "torch.float32" for dtype in frequencies.values()), frequencies


def test_one_bad_prompt_fails_only_its_own_request(
    tiny_gpt2: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    engine = load_engine(tiny_gpt2, tmp_path)
    slow_down(engine, monkeypatch)
    good = engine.stream(GenerationRequest("what are the symptoms of asthma", max_new_tokens=12), GenerationStats())
    first = next(iter(good))  # in flight
    empty = engine.stream_prompt(torch.zeros(1, 0, dtype=torch.long), GenerationRequest("", max_new_tokens=5))
    with pytest.raises(GenerationError):
        list(empty)
    assert first + "".join(good)  # the request already in flight finished normally
    assert good.stats.stopped_by in ("eos", "max_tokens")


def test_converted_weights_are_kept_apart_per_adapter(tiny_gpt2: Path, tmp_path: Path) -> None:
    from inference.adapters import AdapterRef
    from inference.engine.converted import converted_file
    from tests.tiny_model import make_adapter

    adapter = AdapterRef("run-3", str(make_adapter(tiny_gpt2, tmp_path / "adapter")))
    plain = converted_file(str(tiny_gpt2), None, tmp_path, "bfloat16", "int8")
    tuned = converted_file(str(tiny_gpt2), adapter, tmp_path, "bfloat16", "int8")
    assert plain != tuned
    base = load_engine(tiny_gpt2, tmp_path, dtype="bfloat16", quantize="int8")
    load_engine(tiny_gpt2, tmp_path, adapter=adapter, dtype="bfloat16", quantize="int8")
    reloaded = load_engine(tiny_gpt2, tmp_path, adapter=adapter, dtype="bfloat16", quantize="int8")
    assert reloaded.version == "run-3"
    tuned_tokens = run(reloaded, "what helps a headache", 12)[1].token_ids
    assert tuned_tokens != run(base, "what helps a headache", 12)[1].token_ids


def test_converted_weights_are_kept_apart_per_cpu_capability(
    tiny_gpt2: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # torch lays int4 weights out for one capability's kernels: a cache written under AVX-512
    # and read under AVX2 (a shared volume, an image built elsewhere) answered nonsense.
    from inference.engine import cpu
    from inference.engine.converted import converted_file

    monkeypatch.setattr(cpu, "capability", lambda: "AVX512")
    native = converted_file(str(tiny_gpt2), None, tmp_path, "bfloat16", "int4")
    monkeypatch.setattr(cpu, "capability", lambda: "AVX2")
    assert converted_file(str(tiny_gpt2), None, tmp_path, "bfloat16", "int4") != native


def test_int4_quantises_every_layer_and_gives_the_tied_head_exact_rescoring(tiny_llama: Path, tmp_path: Path) -> None:
    engine = load_engine(tiny_llama, tmp_path, dtype="bfloat16", quantize="int4")
    # 2 layers × (q, k, v, o, gate, up, down) in int4; the head, tied to the embeddings, two-stage.
    assert layer_kinds(engine) == {"Int4WeightOnlyLinear": 14}
    assert type(engine.model.lm_head).__name__ == "ShortlistHead"
    classes = layer_classes()
    assert classes["int8"].__mro__[1] is classes["int4"].__mro__[1]  # one shared base class
    text, stats = run(engine, "what are the symptoms of asthma", 12)
    assert text.strip()
    assert 0 < stats.tokens <= 12


def test_int4_is_closer_than_int8_for_weights_already_on_its_grid(tiny_llama: Path) -> None:
    """SmolLM2's packaged weights are GGUF Q4_1 (groups of 32, a scale and a minimum): int4 must
    keep them (only the bf16 rounding of scales remains), so it beats per-channel int8 there."""
    import copy

    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    layer = model.model.layers[0].mlp.up_proj
    torch.manual_seed(1)
    rows, columns = layer.weight.shape
    codes = torch.randint(0, 16, (rows, columns // 32, 32)).float()
    codes[..., 0], codes[..., 1] = 0, 15  # every group spans the whole 4-bit range, as Q4_1 blocks do
    scales = torch.rand(rows, columns // 32, 1) * 0.02 + 0.001
    minimums = torch.randn(rows, columns // 32, 1) * 0.05
    with torch.no_grad():
        layer.weight.copy_((codes * scales + minimums).reshape(rows, columns))
    x = torch.randn(3, columns)
    with torch.inference_mode():
        exact = layer(x)
        errors = {}
        for mode in ("int4", "int8"):
            quantised = copy.deepcopy(model).to(torch.bfloat16)
            quantize_weight_only(quantised, mode)
            out = quantised.model.layers[0].mlp.up_proj(x.to(torch.bfloat16)).float()
            errors[mode] = ((out - exact).norm() / exact.norm()).item()
    assert errors["int4"] < errors["int8"]
    assert errors["int4"] < 0.01


def test_the_converted_cache_keeps_only_the_newest_few_files(tiny_gpt2: Path, tmp_path: Path) -> None:
    import os

    from inference.engine.converted import CONVERTED_KEEP, converted_file

    folder = tmp_path / "converted"
    folder.mkdir()
    for number in range(CONVERTED_KEEP + 2):
        old = folder / f"old-{number}.safetensors"
        old.write_bytes(b"x")
        os.utime(old, (1_000_000 + number, 1_000_000 + number))
    load_engine(tiny_gpt2, tmp_path, dtype="bfloat16", quantize="int8")
    kept = sorted(p.name for p in folder.glob("*.safetensors"))
    assert len(kept) == CONVERTED_KEEP
    assert converted_file(str(tiny_gpt2), None, tmp_path, "bfloat16", "int8").name in kept
    assert "old-0.safetensors" not in kept


def test_the_two_stage_head_picks_the_same_best_tokens_as_the_exact_head(tiny_llama: Path) -> None:
    import copy

    import torch
    from transformers import AutoModelForCausalLM

    exact = AutoModelForCausalLM.from_pretrained(tiny_llama).eval().to(torch.bfloat16)
    quantised = copy.deepcopy(exact)
    quantize_weight_only(quantised, "int4")
    assert type(quantised.lm_head).__name__ == "ShortlistHead"
    hidden = torch.randn(5, 7, exact.config.hidden_size, dtype=torch.bfloat16)
    with torch.inference_mode():
        want = exact.lm_head(hidden)
        got = quantised.lm_head(hidden)
    assert torch.equal(got.argmax(-1), want.argmax(-1))
    top = want.topk(5, dim=-1).indices
    assert torch.allclose(got.gather(-1, top).float(), want.gather(-1, top).float(), rtol=0.02, atol=0.02)


@pytest.mark.parametrize("model", ["gpt2", "llama"])
def test_the_shared_prompt_start_is_computed_once_and_answers_stay_exact(
    model: str, tiny_gpt2: Path, tiny_llama: Path, tmp_path: Path
) -> None:
    engine = load_engine(tiny_gpt2 if model == "gpt2" else tiny_llama, tmp_path)
    request = GenerationRequest(
        "what are the symptoms of asthma", max_new_tokens=12, grounding="asthma is a long term condition"
    )
    expected = greedy_reference(engine, request)
    shared = len(engine.shared_start_ids())
    for _ in range(2):
        stats = GenerationStats()
        "".join(engine.stream(request, stats))
        answer = [t for t in stats.token_ids if t not in engine.eos_ids]
        assert answer == [t for t in expected if t not in engine.eos_ids]
    # Both prompts took the system message and rules from the cache instead of computing them.
    assert shared >= 16
    assert engine._batcher.reused_tokens == 2 * shared

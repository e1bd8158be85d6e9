"""Single-stream generation: decode tokens/s, time to first token, memory, and greedy agreement.

Compares MedBot's engine (as configured by default, and each speed-up on its own) with plain
transformers ``generate`` in fp32 and with llama.cpp on the same GGUF file, all in one run, each
in its own process so the memory figures are clean. Every variant also answers a fixed set of
questions greedily; "agreement" is the share of fp32's greedy tokens it reproduced.

Time to first token is measured on two prompts: a 40-token question, and MedBot's real grounded
prompt (system message, rules, the passages the curated knowledge gives for a blood-pressure
question, the question: ~330 tokens), where prefill decides what people wait for. MedBot's
engine reuses the KV cache of the start every grounded prompt shares; llama.cpp is timed both
from scratch and with that same start already evaluated (its own prefix reuse), like for like.

    .venv/bin/python bench/generation.py            # all variants, 2 rounds
    .venv/bin/python bench/generation.py --rounds 1 --variants engine-default,llama.cpp
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

PROMPT_TOKENS = 40  # the time-to-first-token prompt length the targets are stated for
GROUNDED_QUESTION = "How can I lower my blood pressure?"  # answered from our own curated entries
SPEED_NEW_TOKENS = 128
AGREEMENT_NEW_TOKENS = 32
REPEATS = 5

# name -> how the engine is built; None values mean "MedBot's configured default".
ENGINE_VARIANTS: dict[str, dict[str, Any]] = {
    "engine-default": {},
    "engine-fp32": {"dtype": "float32", "quantize": "none"},
    "engine-bf16": {"dtype": "bfloat16", "quantize": "none"},
    "engine-bf16-int8": {"dtype": "bfloat16", "quantize": "int8"},
    "engine-bf16-int4": {"dtype": "bfloat16", "quantize": "int4"},
    "engine-bf16-int4-2threads": {"dtype": "bfloat16", "quantize": "int4", "threads": 2},
}
# llama.cpp with the brief's 2 threads, and with 1: its threads spin at every barrier, so when
# another process holds a core, 2 threads can be many times slower than 1. Ratios use the faster.
LLAMA_VARIANTS = {"llama.cpp": 2, "llama.cpp-1thread": 1}
ALL_VARIANTS = ["transformers-fp32", *ENGINE_VARIANTS, *LLAMA_VARIANTS]


# --- prompts ----------------------------------------------------------------------------------


def build_prompts() -> dict[str, Any]:
    """Token ids every variant receives: one 40-token speed prompt, and MedBot's real prompt
    (system message + question, no grounding) for each agreement question."""
    common.setup_django(MEDBOT_LOAD_MODEL="0")
    from inference import registry
    from inference.engine import EngineConfig, GenerationRequest, LoraEngine

    config = EngineConfig.from_settings(kind="local")
    folder = registry.model_folder(config.base_model, config.cache_root)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    words = common.SPEED_QUESTION.split()
    while True:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": " ".join(words)}], tokenize=False, add_generation_prompt=True
        )
        speed = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(speed) <= PROMPT_TOKENS or len(words) < 3:
            break
        words.pop()
    shim = LoraEngine.__new__(LoraEngine)  # prompt building needs only the tokenizer
    shim.tokenizer, shim.history_tokens = tokenizer, config.history_tokens
    agreement = [shim.prompt_ids(GenerationRequest(q))["input_ids"][0].tolist() for q in common.QUESTIONS]
    grounded = shim.prompt_ids(GenerationRequest(GROUNDED_QUESTION, grounding=grounded_text()))["input_ids"][0]
    return {
        "speed": speed,
        "agreement": agreement,
        "grounded": grounded.tolist(),
        "shared_start": shim.shared_start_ids().tolist(),
        "eos": [tokenizer.eos_token_id],
    }


def grounded_text() -> str:
    """The grounding MedBot sends for GROUNDED_QUESTION, from the curated entries alone (in the
    repository), so the prompt is the same on every machine whatever else was imported."""
    from inference.pipeline import PASSAGES_PER_ANSWER, grounding_for
    from inference.retrieval import RULE_PREFIX, load_documents
    from knowledge.search import KnowledgeIndex

    curated = [document for document in load_documents() if document.key.startswith(RULE_PREFIX)]
    hits = KnowledgeIndex(curated).search(GROUNDED_QUESTION, limit=PASSAGES_PER_ANSWER)
    if not hits:
        raise SystemExit("no curated entry answers the grounded question: run `make fixtures` first")
    return grounding_for(GROUNDED_QUESTION, [hit.document for hit in hits])


# --- measuring one generator --------------------------------------------------------------------

# A generator is "prompt ids, max new tokens -> iterator of new token ids", consumed lazily so
# the first token's arrival can be timed.
TokenStream = Callable[[list[int], int], Iterator[int]]


# A scorer is "prompt ids, continuation ids -> logits [len(continuation), vocab]": the logits
# the model gives each continuation token, all in one forward pass (teacher forcing).
Scorer = Callable[[list[int], list[int]], Any]


def teacher_forced(score: Scorer, prompts: dict[str, Any]) -> dict[str, Any]:
    """Agreement and NLL on fp32's own continuations, position by position.

    At each position the variant sees fp32's prefix and we ask whether its greedy choice (with
    the same repetition penalty) is fp32's token: one early difference does not spoil the rest,
    unlike the free-running measure. The NLL is the variant's mean negative log-likelihood of
    fp32's tokens (fp32's own value is the floor)."""
    import torch

    matched = total = 0
    nll = 0.0
    for ids, continuation in zip(prompts["agreement"], prompts.get("reference") or [], strict=False):
        if not continuation:
            continue
        logits = torch.as_tensor(score(ids, continuation), dtype=torch.float32)
        seen = torch.zeros(logits.shape[-1], dtype=torch.bool)
        seen[torch.tensor(ids)] = True
        for position, token in enumerate(continuation):
            row = logits[position]
            penalised = torch.where(seen, torch.where(row > 0, row / 1.1, row * 1.1), row)
            matched += int(int(penalised.argmax()) == token)
            nll -= float(torch.log_softmax(row, dim=-1)[token])
            seen[token] = True
            total += 1
    if not total:
        return {}
    return {"teacher_forced_agreement": round(matched / total, 4), "nll": round(nll / total, 4)}


def hf_scorer(model: Any) -> Scorer:
    import torch

    def score(ids: list[int], continuation: list[int]) -> Any:
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor([ids + continuation])).logits[0].float()
        return logits[len(ids) - 1 : len(ids) - 1 + len(continuation)]

    return score


def first_token_times(generate: TokenStream, ids: list[int], prime: Callable[[], None] | None = None) -> list[float]:
    """Seconds to the first new token, REPEATS times; ``prime`` runs before each, untimed."""
    list(generate(ids, 2))  # warm-up: first-call allocations are not what users wait for
    times = []
    for _ in range(REPEATS):
        if prime is not None:
            prime()
        started = time.perf_counter()
        next(iter(generate(ids, 1)))
        times.append(time.perf_counter() - started)
    return times


def ttft_figures(name: str, tokens: int, times: list[float]) -> dict[str, Any]:
    best = common.median(times)
    return {
        f"{name}_prompt_tokens": tokens,
        f"{name}_ttft_ms": round(best * 1000, 1),
        f"{name}_ttft_ms_runs": [round(t * 1000, 1) for t in times],
        f"{name}_prefill_tok_s": round(tokens / best, 1),
    }


def measure(generate: TokenStream, prompts: dict[str, Any]) -> dict[str, Any]:
    speed = prompts["speed"]
    ttfts = first_token_times(generate, speed)
    grounded = ttft_figures("grounded", len(prompts["grounded"]), first_token_times(generate, prompts["grounded"]))
    rates, cpu_rates, counts = [], [], []
    for _ in range(max(3, REPEATS - 2)):
        first = first_cpu = None
        n = 0
        for _token in generate(speed, SPEED_NEW_TOKENS):
            n += 1
            if first is None:
                first, first_cpu = time.perf_counter(), time.process_time()
        finished, finished_cpu = time.perf_counter(), time.process_time()
        counts.append(n)
        if n > 1 and first is not None and first_cpu is not None:
            rates.append((n - 1) / (finished - first))
            cpu_rates.append((n - 1) / max(finished_cpu - first_cpu, 1e-9))
    answers = [list(generate(ids, AGREEMENT_NEW_TOKENS)) for ids in prompts["agreement"]]
    return {
        **grounded,
        "prompt_tokens": len(speed),
        "ttft_ms": round(common.median(ttfts) * 1000, 1),
        "ttft_ms_runs": [round(t * 1000, 1) for t in ttfts],
        "prefill_tok_s": round(len(speed) / common.median(ttfts), 1),
        "decode_tok_s": round(common.median(rates), 1) if rates else None,
        "decode_tok_s_runs": [round(r, 1) for r in rates],
        # Tokens per CPU-second of this process: steadier than wall time on a shared machine,
        # but only comparable between single-threaded variants (llama.cpp's threads spin).
        "decode_tok_per_cpu_s": round(common.median(cpu_rates), 1) if cpu_rates else None,
        "speed_tokens": counts,
        "answers": answers,
    }


# --- the variants, each in its own process --------------------------------------------------------


def transformers_fp32(prompts: dict[str, Any]) -> tuple[TokenStream, Scorer]:
    """Plain transformers: the fp32 model, ``generate`` with the same decoding rule as MedBot's
    engine (greedy, repetition penalty 1.1, stop at end-of-turn)."""
    import threading

    import torch
    from django.conf import settings
    from transformers import TextIteratorStreamer

    from inference import registry

    torch.set_num_threads(settings.MEDBOT_TORCH_THREADS)
    model, tokenizer = registry.load_base(settings.MEDBOT_BASE_MODEL, Path(settings.MEDBOT_MODEL_CACHE), "float32")

    class Ids(TextIteratorStreamer):
        def put(self, value: Any) -> None:  # token ids, not text
            if self.next_tokens_are_prompt:
                self.next_tokens_are_prompt = False
                return
            for token in value.reshape(-1).tolist():
                self.text_queue.put(token)

        def end(self) -> None:
            self.text_queue.put(self.stop_signal)

    def generate(ids: list[int], new_tokens: int) -> Iterator[int]:
        streamer = Ids(tokenizer, timeout=120)

        def run() -> None:
            torch.set_num_threads(settings.MEDBOT_TORCH_THREADS)
            with torch.inference_mode():
                model.generate(
                    input_ids=torch.tensor([ids]),
                    attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                    max_new_tokens=new_tokens,
                    do_sample=False,
                    temperature=None,
                    top_p=None,
                    top_k=None,
                    repetition_penalty=1.1,
                    eos_token_id=prompts["eos"],
                    pad_token_id=tokenizer.pad_token_id,
                    streamer=streamer,
                )

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        for token in streamer:
            if token in prompts["eos"]:
                break
            yield token
        thread.join()

    return generate, hf_scorer(model)


def medbot_engine(prompts: dict[str, Any], options: dict[str, Any]) -> tuple[TokenStream, Scorer, Any]:
    """MedBot's own engine, built the way EngineManager builds it, with ``options`` overriding."""
    import torch

    from inference.engine import EngineConfig, GenerationRequest, GenerationStats, LoraEngine

    # On the base model: an adapter active in the development database must not change what is measured.
    engine = LoraEngine.load(EngineConfig.from_settings(kind="local", **options))

    def generate(ids: list[int], new_tokens: int) -> Iterator[int]:
        stats = GenerationStats()
        request = GenerationRequest("", max_new_tokens=new_tokens, timeout=300)
        seen = 0
        for _piece in engine.stream_prompt(torch.tensor([ids]), request, stats):
            while seen < len(stats.token_ids):
                token = stats.token_ids[seen]
                seen += 1
                if token not in prompts["eos"]:
                    yield token
        for token in stats.token_ids[seen:]:
            if token not in prompts["eos"]:
                yield token

    return generate, hf_scorer(engine.model), engine


def llama_cpp(prompts: dict[str, Any], threads: int) -> tuple[TokenStream, Scorer, TokenStream, Callable[[], None]]:
    """llama.cpp through llama-cpp-python on the very GGUF file MedBot's weights come from."""
    from llama_cpp import Llama

    from inference import registry

    llm = Llama(
        model_path=str(registry.gguf_path()),
        n_ctx=2048,
        n_threads=threads,
        n_threads_batch=threads,
        last_n_tokens_size=2048,  # penalise repeats over the whole context, as transformers does
        verbose=False,
    )

    def generate(ids: list[int], new_tokens: int) -> Iterator[int]:
        llm.reset()  # the whole prompt from scratch
        yield from tokens_after(ids, new_tokens)

    def tokens_after(ids: list[int], new_tokens: int) -> Iterator[int]:
        # reset=True still keeps the longest prefix already evaluated (llama-cpp-python's own
        # prompt reuse); after llm.reset() there is none.
        for n, token in enumerate(llm.generate(ids, temp=0.0, top_k=1, repeat_penalty=1.1, reset=True)):
            if token in prompts["eos"] or token == llm.token_eos():
                return
            yield token
            if n + 1 >= new_tokens:
                return

    def evaluate_shared_start() -> None:
        """Like MedBot's engine: the shared start is already evaluated, only the rest is new."""
        llm.reset()
        llm.eval(prompts["shared_start"])

    # A second instance keeps every position's logits (slower, so not the one that is timed).
    scorer_llm = Llama(
        model_path=str(registry.gguf_path()), n_ctx=2048, n_threads=threads, logits_all=True, verbose=False
    )

    def score(ids: list[int], continuation: list[int]) -> Any:
        scorer_llm.reset()
        scorer_llm.eval(ids + continuation)
        return scorer_llm.scores[len(ids) - 1 : len(ids) - 1 + len(continuation)].copy()

    return generate, score, tokens_after, evaluate_shared_start


def worker(variant: str, prompts_path: str) -> dict[str, Any]:
    started = time.perf_counter()
    common.setup_django(MEDBOT_LOAD_MODEL="0")
    prompts = json.loads(Path(prompts_path).read_text())
    engine = None
    if variant == "transformers-fp32":
        generate, score = transformers_fp32(prompts)
    elif variant in LLAMA_VARIANTS:
        generate, score, continue_prompt, evaluate_shared_start = llama_cpp(prompts, LLAMA_VARIANTS[variant])
    else:
        generate, score, engine = medbot_engine(prompts, ENGINE_VARIANTS[variant])
    loaded = time.perf_counter()
    result = measure(generate, prompts)
    if variant in LLAMA_VARIANTS:
        times = first_token_times(continue_prompt, prompts["grounded"], prime=evaluate_shared_start)
        result.update(ttft_figures("grounded_shared_start", len(prompts["grounded"]), times))
    result.update(teacher_forced(score, prompts))
    result.update(
        variant=variant,
        load_s=round(loaded - started, 2),
        rss_after_answers_mib=common.rss_mib(),
        peak_rss_mib=common.peak_rss_mib(),
    )
    if engine is not None:
        from inference.engine import cpu

        config = engine.config  # as resolved by EngineConfig.from_settings (auto included)
        result["config"] = {
            "dtype": config.dtype,
            "quantize": config.quantize,
            "threads": config.threads,
            "prefill_threads": config.batch_threads,
        }
        result["cpu"] = cpu.describe()
    return result


# --- the run ------------------------------------------------------------------------------------


def summarise(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Ratios per round (same run, same machine load), then the median over rounds."""
    variants = list(rounds[0])
    summary: dict[str, Any] = {}
    for name in variants:
        per_round = []
        for measured in rounds:
            row = measured[name]
            reference = measured.get("transformers-fp32")
            llamas = [measured[v] for v in LLAMA_VARIANTS if v in measured and measured[v]["decode_tok_s"]]
            llama = max(llamas, key=lambda r: r["decode_tok_s"]) if llamas else None
            entry = {
                "teacher_forced_agreement": row.get("teacher_forced_agreement"),
                "nll": row.get("nll"),
                "decode_tok_s": row["decode_tok_s"],
                "decode_tok_per_cpu_s": row.get("decode_tok_per_cpu_s"),
                "ttft_ms": row["ttft_ms"],
                "prefill_tok_s": row.get("prefill_tok_s"),
                "grounded_ttft_ms": row.get("grounded_ttft_ms"),
                "grounded_prefill_tok_s": row.get("grounded_prefill_tok_s"),
                "grounded_shared_start_ttft_ms": row.get("grounded_shared_start_ttft_ms"),
                "peak_rss_mib": row["peak_rss_mib"],
                "rss_after_answers_mib": row["rss_after_answers_mib"],
                "load_s": row["load_s"],
            }
            if reference:
                free = common.agreement(reference["answers"], row["answers"])
                entry["free_running_agreement"], entry["tokens_compared"] = free["agreement"], free["tokens_compared"]
                entry["x_transformers_fp32"] = round(row["decode_tok_s"] / reference["decode_tok_s"], 3)
            if llama:
                entry["x_llama_cpp"] = round(row["decode_tok_s"] / llama["decode_tok_s"], 3)
            per_round.append(entry)
        keys = per_round[0].keys()
        summary[name] = {
            key: common.median([r[key] for r in per_round if r.get(key) is not None])
            if key != "tokens_compared"
            else per_round[0][key]
            for key in keys
        }
        summary[name]["rounds"] = per_round
        if "config" in rounds[0][name]:
            summary[name]["config"] = rounds[0][name]["config"]
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=2, metavar=("VARIANT", "PROMPTS_JSON"), help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--variants", default=",".join(ALL_VARIANTS))
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return
    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(ALL_VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; choose from {ALL_VARIANTS}")
    prompts = build_prompts()
    rounds: list[dict[str, dict[str, Any]]] = []
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(prompts, handle)
    if "transformers-fp32" in variants:  # the reference runs first: the others are scored on its answers
        variants = ["transformers-fp32", *[v for v in variants if v != "transformers-fp32"]]
    for number in range(args.rounds):
        measured: dict[str, dict[str, Any]] = {}
        for variant in variants:
            print(f"round {number + 1}/{args.rounds}: {variant} ...", file=sys.stderr, flush=True)
            measured[variant] = common.run_worker("generation.py", [variant, handle.name])
            if variant == "transformers-fp32":
                prompts["reference"] = measured[variant]["answers"]
                Path(handle.name).write_text(json.dumps(prompts))
            row = measured[variant]
            print(
                f"  {row['decode_tok_s']} tok/s, TTFT {row['ttft_ms']} ms, grounded TTFT {row['grounded_ttft_ms']} ms",
                file=sys.stderr,
                flush=True,
            )
        rounds.append(measured)
    Path(handle.name).unlink(missing_ok=True)
    summary = summarise(rounds)
    for measured in rounds:
        for row in measured.values():
            row.pop("answers", None)
    common.save(
        "generation",
        {
            "settings": {
                "prompt_tokens": len(prompts["speed"]),
                "grounded_prompt_tokens": len(prompts["grounded"]),
                "shared_start_tokens": len(prompts["shared_start"]),
                "speed_new_tokens": SPEED_NEW_TOKENS,
                "agreement_questions": len(prompts["agreement"]),
                "agreement_new_tokens": AGREEMENT_NEW_TOKENS,
                "repeats": REPEATS,
                "rounds": args.rounds,
            },
            "summary": summary,
            "raw": rounds,
        },
    )


if __name__ == "__main__":
    main()

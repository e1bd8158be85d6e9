"""Concurrent requests to one engine (one worker): total tokens/s, latency and time to first token
with 1, 2, 4 and 8 requests started together, against llama.cpp answering the same requests one
after another, in the same run.

Each request is a real MedBot prompt (system message + question) for up to 64 new tokens.

    .venv/bin/python bench/concurrency.py
    .venv/bin/python bench/concurrency.py --levels 1,8 --repeats 1 --variants engine-default
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

NEW_TOKENS = 64
VARIANTS: dict[str, dict[str, str]] = {
    "engine-default": {},
    # One thread for prefill and batches too: the layout for two workers on two cores.
    "engine-batch-1thread": {"MEDBOT_BATCH_THREADS": "1"},
    "llama.cpp": {},
}


def engine_worker(levels: list[int], repeats: int) -> dict[str, Any]:
    common.setup_django(MEDBOT_LOAD_MODEL="0")
    from inference.engine import EngineConfig, GenerationRequest, GenerationStats, LoraEngine, cpu

    # Built exactly as EngineManager builds it, on the base model: an adapter that happens to be
    # active in the development database must not change what is measured.
    engine = LoraEngine.load(EngineConfig.from_settings(kind="local"))
    list(engine.stream(GenerationRequest("warm up", max_new_tokens=4), GenerationStats()))

    def one_round(clients: int, offset: int) -> dict[str, Any]:
        barrier = threading.Barrier(clients + 1)
        records: list[dict[str, float]] = []

        def client(index: int) -> None:
            question = common.QUESTIONS[(offset + index) % len(common.QUESTIONS)]
            stats = GenerationStats()
            request = GenerationRequest(question, max_new_tokens=NEW_TOKENS, timeout=600)
            barrier.wait()
            started = time.perf_counter()
            first = None
            for _piece in engine.stream(request, stats):
                if first is None:
                    first = time.perf_counter()
            finished = time.perf_counter()
            records.append(
                {
                    "ttft_s": (first or finished) - started,
                    "latency_s": finished - started,
                    "tokens": stats.tokens,
                    "started": started,
                    "finished": finished,
                }
            )

        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        for thread in threads:
            thread.start()
        barrier.wait()
        for thread in threads:
            thread.join()
        wall = max(r["finished"] for r in records) - min(r["started"] for r in records)
        tokens = sum(r["tokens"] for r in records)
        return {
            "total_tok_s": tokens / wall,
            "tokens": tokens,
            "wall_s": wall,
            "latency_s_median": common.median([r["latency_s"] for r in records]),
            "latency_s_max": max(r["latency_s"] for r in records),
            "ttft_s_median": common.median([r["ttft_s"] for r in records]),
            "ttft_s_max": max(r["ttft_s"] for r in records),
            "per_request_tok_s_median": common.median([r["tokens"] / r["latency_s"] for r in records]),
        }

    results: dict[str, Any] = {}
    for clients in levels:
        runs = [one_round(clients, offset=repeat) for repeat in range(repeats)]
        results[str(clients)] = _median_of(runs)
    return {
        "levels": results,
        "config": {
            "dtype": engine.config.dtype,
            "quantize": engine.config.quantize,
            "threads": engine.config.threads,
            "batch_threads": engine.config.batch_threads,
            "max_batch": engine.config.max_batch,
        },
        "cpu": cpu.describe(),
        "peak_batch": engine.peak_batch,
        "rss_mib": common.rss_mib(),
    }


def llama_worker(repeats: int) -> dict[str, Any]:
    """llama.cpp (2 threads) answering the same prompts one at a time: its single-stream rate."""
    common.setup_django(MEDBOT_LOAD_MODEL="0")
    from llama_cpp import Llama
    from transformers import AutoTokenizer

    from inference import registry
    from inference.engine import EngineConfig, LoraEngine

    config = EngineConfig.from_settings(kind="local")
    folder = registry.model_folder(config.base_model, config.cache_root)
    shim = LoraEngine.__new__(LoraEngine)
    shim.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    shim.history_tokens = config.history_tokens
    # 2 threads as asked, and 1: llama.cpp's spinning threads suffer badly when another process
    # holds a core, so the faster of the two is the reference (the conservative choice for us).
    best: dict[str, Any] = {}
    for threads in (2, 1):
        llm = Llama(
            model_path=str(registry.gguf_path()),
            n_ctx=2048,
            n_threads=threads,
            n_threads_batch=threads,
            last_n_tokens_size=2048,
            verbose=False,
        )
        measured = _llama_rates(llm, shim, repeats)
        measured["threads"] = threads
        best[str(threads)] = measured
    fastest = max(best.values(), key=lambda r: r["single_stream_tok_s"])
    return {**fastest, "by_threads": best}


def _llama_rates(llm: Any, shim: Any, repeats: int) -> dict[str, Any]:
    from inference.engine import GenerationRequest

    eos = {llm.token_eos(), shim.tokenizer.eos_token_id}
    rates, ttfts = [], []
    for repeat in range(repeats):
        tokens = 0
        started = time.perf_counter()
        for index in range(8):
            question = common.QUESTIONS[(repeat + index) % len(common.QUESTIONS)]
            ids = shim.prompt_ids(GenerationRequest(question))["input_ids"][0].tolist()
            llm.reset()  # no reuse of the shared system-prompt prefix: MedBot's engine has none either
            asked = time.perf_counter()
            for n, token in enumerate(llm.generate(ids, temp=0.0, top_k=1, repeat_penalty=1.1, reset=True)):
                if n == 0:
                    ttfts.append(time.perf_counter() - asked)
                if token in eos:
                    break
                tokens += 1
                if n + 1 >= NEW_TOKENS:
                    break
        rates.append(tokens / (time.perf_counter() - started))
    return {"single_stream_tok_s": common.median(rates), "runs": rates, "ttft_s_median": common.median(ttfts)}


def _median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    merged = {key: common.median([run[key] for run in runs]) for key in runs[0]}
    merged["total_tok_s_runs"] = [round(run["total_tok_s"], 1) for run in runs]
    return merged


def plot(summary: dict[str, Any]) -> Path | None:
    """Tokens/s against concurrency, with llama.cpp's single stream as a reference line."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot", file=sys.stderr)
        return None
    figure, (left, right) = plt.subplots(1, 2, figsize=(8, 3.2), dpi=100)
    for name, row in summary.items():
        if "levels" not in row:
            continue
        levels = sorted(int(level) for level in row["levels"])
        left.plot(levels, [row["levels"][str(n)]["total_tok_s"] for n in levels], marker="o", label=name)
        right.plot(levels, [row["levels"][str(n)]["latency_s_median"] for n in levels], marker="o", label=name)
    llama = summary.get("llama.cpp", {}).get("single_stream_tok_s")
    if llama:
        left.axhline(llama, color="grey", linestyle="--", label="llama.cpp, 1 stream")
        left.axhline(2.5 * llama, color="grey", linestyle=":", label="target: 2.5 × llama.cpp")
    left.set(xlabel="concurrent requests", ylabel="total tokens/s", xscale="log", title="Throughput")
    right.set(xlabel="concurrent requests", ylabel="seconds", xscale="log", title="Median latency (64 tokens)")
    for axis in (left, right):
        axis.set_xticks([1, 2, 4, 8], labels=["1", "2", "4", "8"])
        axis.minorticks_off()
        axis.grid(alpha=0.3)
    left.legend(fontsize=7)
    figure.tight_layout()
    common.DOCS.mkdir(exist_ok=True)
    path = common.DOCS / "bench-concurrency.png"
    figure.savefig(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--levels", default="1,2,4,8")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    levels = [int(level) for level in args.levels.split(",")]
    if args.worker == "llama.cpp":
        print(json.dumps(llama_worker(args.repeats)))
        return
    if args.worker:
        print(json.dumps(engine_worker(levels, args.repeats)))
        return
    summary: dict[str, Any] = {}
    for name in args.variants.split(","):
        print(f"{name} ...", file=sys.stderr, flush=True)
        summary[name] = common.run_worker(
            "concurrency.py",
            [name, "--levels", args.levels, "--repeats", str(args.repeats)],
            env=VARIANTS[name],
        )
    llama = summary.get("llama.cpp", {}).get("single_stream_tok_s")
    if llama:
        for row in summary.values():
            for level in row.get("levels", {}).values():
                level["x_llama_cpp_single_stream"] = round(level["total_tok_s"] / llama, 3)
    picture = plot(summary)
    common.save(
        "concurrency",
        {
            "settings": {"new_tokens": NEW_TOKENS, "levels": levels, "repeats": args.repeats},
            "summary": summary,
            "plot": str(picture.relative_to(common.ROOT)) if picture else None,
        },
    )


if __name__ == "__main__":
    main()

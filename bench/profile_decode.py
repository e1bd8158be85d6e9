"""Where one decode step of the engine spends its time: the default engine (as `auto` resolves it
on this CPU), one token at a time after a 100-token prompt, with 1 and with 2 torch threads.

    .venv/bin/python bench/profile_decode.py             # 1 and 2 threads, 100 timed steps each
    .venv/bin/python bench/profile_decode.py --threads 1 --rows 25

Prints the step time and the torch profiler's top operators per thread count, and writes
bench/results/profile_decode.json. The figures in BENCHMARKS.md ("Why decode still misses")
come from it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

PROMPT_TOKENS = 100
TIMED_STEPS = 100
PROFILED_STEPS = 20


def measure(engine: Any, threads: int, rows: int) -> dict[str, Any]:
    import torch
    from torch.profiler import ProfilerActivity, profile
    from transformers import DynamicCache

    torch.set_num_threads(threads)  # after loading: the engine sets its own count while loading
    model = engine.model
    ids = torch.randint(100, 1000, (1, PROMPT_TOKENS))
    token = torch.tensor([[5]])
    with torch.inference_mode():
        cache = DynamicCache(config=model.config)
        positions = torch.arange(PROMPT_TOKENS)
        model(input_ids=ids, cache=cache, use_cache=True, position_ids=positions[None], cache_position=positions)
        step = 0

        def one() -> None:
            nonlocal step
            at = PROMPT_TOKENS + step
            model(input_ids=token, position_ids=torch.tensor([[at]]), cache_position=torch.tensor([at]), cache=cache)
            step += 1

        for _ in range(10):  # warm-up
            one()
        started = time.perf_counter()
        for _ in range(TIMED_STEPS):
            one()
        step_ms = (time.perf_counter() - started) / TIMED_STEPS * 1000
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(PROFILED_STEPS):
                one()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1
    table = [
        {
            "op": e.key,
            "share": round(e.self_cpu_time_total / total, 3),
            "calls_per_step": round(e.count / PROFILED_STEPS, 1),
            "us_per_call": round(e.self_cpu_time_total / max(e.count, 1), 1),
        }
        for e in events[:rows]
    ]
    return {"threads": threads, "step_ms": round(step_ms, 2), "tokens_per_s": round(1000 / step_ms, 1), "top": table}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, action="append", help="torch threads (default: 1 and 2)")
    parser.add_argument("--rows", type=int, default=12, help="operators to list")
    args = parser.parse_args()
    common.setup_django(MEDBOT_LOAD_MODEL="0")
    from inference.engine import EngineConfig, LoraEngine, cpu

    engine = LoraEngine.load(EngineConfig.from_settings(kind="local"))
    results = [measure(engine, threads, args.rows) for threads in args.threads or [1, 2]]
    for result in results:
        print(f"{result['threads']} thread(s): {result['step_ms']} ms per step = {result['tokens_per_s']} tok/s")
        for row in result["top"]:
            share, calls, each = row["share"], row["calls_per_step"], row["us_per_call"]
            print(f"  {share:6.1%}  {calls:7.1f} calls  {each:8.1f} us  {row['op']}")
    config = engine.config
    common.save(
        "profile_decode",
        {"engine": {"dtype": config.dtype, "quantize": config.quantize}, "cpu": cpu.describe(), "results": results},
    )
    engine.close()


if __name__ == "__main__":
    main()

"""Print the latest benchmark results (bench/results/*.json) as Markdown tables for BENCHMARKS.md,
with each target marked as holding or not.

    .venv/bin/python bench/report.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common


def load(name: str) -> dict[str, Any] | None:
    path = common.RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def mark(ok: bool | None) -> str:
    return "n/a" if ok is None else ("holds" if ok else "**misses**")


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def generation_table(data: dict[str, Any]) -> list[str]:
    lines = [
        "| variant | decode tok/s | × llama.cpp | × transformers fp32 | tok per CPU-s | TTFT ms | TTFT grounded ms "
        "(prefill tok/s) | agreement, teacher-forced | NLL | agreement, free-running (tokens) | peak RSS MiB "
        "| RSS after MiB | load s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in data["summary"].items():
        config = row.get("config")
        label = f"{name} ({config['dtype']}, {config['quantize']}, {config['threads']} thr)" if config else name
        lines.append(
            f"| {label} | {fmt(row['decode_tok_s'])} | {fmt(row.get('x_llama_cpp'), 2)} | "
            f"{fmt(row.get('x_transformers_fp32'), 2)} | {fmt(row.get('decode_tok_per_cpu_s'))} | "
            f"{fmt(row['ttft_ms'])} | {grounded_cell(row)} | "
            f"{fmt(row.get('teacher_forced_agreement'), 3)} | {fmt(row.get('nll'), 3)} | "
            f"{fmt(row.get('free_running_agreement'), 3)} ({row.get('tokens_compared', '–')}) | "
            f"{fmt(row['peak_rss_mib'], 0)} | {fmt(row['rss_after_answers_mib'], 0)} | {fmt(row['load_s'], 2)} |"
        )
    return lines


def grounded_cell(row: dict[str, Any]) -> str:
    """TTFT on the real grounded prompt; for llama.cpp also with the shared start evaluated."""
    cell = f"{fmt(row.get('grounded_ttft_ms'))} ({fmt(row.get('grounded_prefill_tok_s'), 0)})"
    if row.get("grounded_shared_start_ttft_ms") is not None:
        cell += f"; shared start cached {fmt(row['grounded_shared_start_ttft_ms'])}"
    return cell


def concurrency_table(data: dict[str, Any]) -> list[str]:
    lines = [
        "| variant | clients | total tok/s | × llama.cpp 1 stream | per-request tok/s | median latency s "
        "| median TTFT s | max TTFT s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in data["summary"].items():
        if "levels" not in row:
            lines.append(
                f"| {name} | 1 (sequential) | {fmt(row.get('single_stream_tok_s'))} | 1.00 | | | "
                f"{fmt(row.get('ttft_s_median'), 3)} | |"
            )
            continue
        for clients, level in row["levels"].items():
            lines.append(
                f"| {name} | {clients} | {fmt(level['total_tok_s'])} | {fmt(level.get('x_llama_cpp_single_stream'), 2)}"
                f" | {fmt(level['per_request_tok_s_median'])} | {fmt(level['latency_s_median'], 2)} | "
                f"{fmt(level['ttft_s_median'], 3)} | {fmt(level['ttft_s_max'], 3)} |"
            )
    return lines


def load_table(data: dict[str, Any]) -> list[str]:
    lines = [
        "| path | clients | requests | errors | p50 ms | p95 ms | p99 ms | req/s | sources |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in data["summary"].items():
        for level in row["levels"]:
            lines.append(
                f"| {name} | {level['clients']} | {level['requests']} | {level['errors']} | {fmt(level['p50_ms'])} | "
                f"{fmt(level['p95_ms'])} | {fmt(level['p99_ms'])} | {fmt(level['requests_per_s'])} | "
                f"{level['sources']} |"
            )
    return lines


def targets(gen: Any, conc: Any, cold: Any, load_data: Any) -> list[str]:
    rows: list[tuple[str, str, bool | None]] = []
    if gen:
        default = gen["summary"].get("engine-default", {})
        rows.append(
            (
                "single-stream decode ≥ 0.8 × llama.cpp",
                f"{fmt(default.get('x_llama_cpp'), 2)} ×",
                None if default.get("x_llama_cpp") is None else default["x_llama_cpp"] >= 0.8,
            )
        )
        tf, free = default.get("teacher_forced_agreement"), default.get("free_running_agreement")
        rows.append(
            (
                "agreement with fp32 ≥ 0.9 (default; teacher-forced, free-running in brackets)",
                f"{fmt(tf, 3)} ({fmt(free, 3)})",
                None if tf is None else tf >= 0.9,
            )
        )
        grounded = default.get("grounded_ttft_ms")
        rows.append(
            (
                "TTFT ≤ 1 s on MedBot's real grounded prompt",
                f"{fmt(grounded)} ms",
                None if grounded is None else grounded <= 1000,
            )
        )
        rows.append(
            (
                "TTFT ≤ 150 ms (40-token prompt)",
                f"{fmt(default.get('ttft_ms'))} ms",
                None if default.get("ttft_ms") is None else default["ttft_ms"] <= 150,
            )
        )
    if conc:
        level = conc["summary"].get("engine-default", {}).get("levels", {}).get("8", {})
        ratio = level.get("x_llama_cpp_single_stream")
        rows.append(
            (
                "8 concurrent total tok/s ≥ 2.5 × llama.cpp single stream",
                f"{fmt(ratio, 2)} ×",
                None if ratio is None else ratio >= 2.5,
            )
        )
    if cold:
        summary = cold["summary"]
        rows.append(
            (
                "cold start to ready ≤ 5 s (warm cache)",
                f"{fmt(summary.get('engine_ready_s'), 2)} s",
                None if summary.get("engine_ready_s") is None else summary["engine_ready_s"] <= 5,
            )
        )
        rows.append(
            (
                "worker RSS ≤ 700 MB after answering",
                f"{fmt(summary.get('worker_rss_after_answers_mib'), 0)} MiB",
                None
                if summary.get("worker_rss_after_answers_mib") is None
                else summary["worker_rss_after_answers_mib"] * 1.048576 <= 700,
            )
        )
    if load_data and "rules" in load_data["summary"]:
        level = next(r for r in load_data["summary"]["rules"]["levels"] if r["clients"] == 16)
        rows.append(
            (
                "rules path p95 ≤ 30 ms at 16 clients, 0 errors",
                f"{fmt(level['p95_ms'])} ms, {level['errors']} errors",
                level["p95_ms"] <= 30 and level["errors"] == 0,
            )
        )
    return ["| target | measured | |", "|---|---|---|", *[f"| {t} | {m} | {mark(ok)} |" for t, m, ok in rows]]


def main() -> None:
    gen, conc, cold, load_data = load("generation"), load("concurrency"), load("coldstart"), load("load")
    out: list[str] = ["## Targets", "", *targets(gen, conc, cold, load_data), ""]
    for title, data, table in [
        ("Single stream (bench/generation.py)", gen, generation_table),
        ("Concurrency (bench/concurrency.py)", conc, concurrency_table),
        ("API under load (bench/load.py)", load_data, load_table),
    ]:
        if data:
            out += [
                f"## {title}",
                "",
                f"Run finished {data['finished_at']}; load average at start "
                f"{data['machine'].get('load_average_at_start')}.",
                "",
                *table(data),
                "",
            ]
    if cold:
        out += ["## Cold start (bench/coldstart.py)", "", "```", json.dumps(cold["summary"], indent=2), "```", ""]
    print("\n".join(out))


if __name__ == "__main__":
    main()

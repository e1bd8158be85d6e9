"""The HTTP API under load: gunicorn (production config, loopback only) and a thread-pool client.

Two paths through ``POST /api/v1/ask``:

- rules: ``MEDBOT_LOAD_MODEL=0``, answers come from the curated rules (the safety net's speed);
- model: the engine answers (``MEDBOT_MAX_NEW_TOKENS`` new tokens at most).

For 1, 4 and 16 clients, each client sends its share of a bounded number of requests back to
back; we report p50/p95/p99 latency, throughput and errors (non-2xx or transport failures).
Rate limiting is off and the answer cache is off, so every request does the real work. The
database is a throwaway SQLite file.

    .venv/bin/python bench/load.py
    .venv/bin/python bench/load.py --paths rules --requests 100
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

LEVELS = [1, 4, 16]
PATHS: dict[str, dict[str, str]] = {
    # Rules only: two workers, as `WEB_CONCURRENCY` defaults to in production.
    "rules": {"MEDBOT_LOAD_MODEL": "0", "GUNICORN_WORKERS": "2", "GUNICORN_THREADS": "8"},
    # One worker holds one engine; 16 threads let 16 answers stream (and batch) at once.
    "model": {"MEDBOT_LOAD_MODEL": "1", "GUNICORN_WORKERS": "1", "GUNICORN_THREADS": "16"},
}


def hammer(port: int, token: str, clients: int, requests: int) -> dict[str, Any]:
    """``requests`` POSTs spread over ``clients`` threads, each sending its next one as soon as
    the last is answered."""
    latencies: list[float] = []
    errors: list[str] = []
    sources: dict[str, int] = {}
    lock = threading.Lock()
    counter = iter(range(requests))

    def client(index: int) -> None:
        while True:
            with lock:
                number = next(counter, None)
            if number is None:
                return
            question = common.QUESTIONS[(index + number) % len(common.QUESTIONS)]
            started = time.perf_counter()
            try:
                status, body = common.post_json(port, "/api/v1/ask", {"question": question}, token)
            except OSError as error:
                status, body = 0, repr(error)
            elapsed = time.perf_counter() - started
            with lock:
                if 200 <= status < 300:
                    latencies.append(elapsed)
                    source = body.get("source", "?") if isinstance(body, dict) else "?"
                    sources[source] = sources.get(source, 0) + 1
                else:
                    errors.append(f"{status}: {str(body)[:120]}")

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    wall = time.perf_counter() - started
    return {
        "clients": clients,
        "requests": requests,
        "ok": len(latencies),
        "errors": len(errors),
        "error_examples": errors[:3],
        "sources": sources,
        "p50_ms": _ms(common.percentile(latencies, 0.50)),
        "p95_ms": _ms(common.percentile(latencies, 0.95)),
        "p99_ms": _ms(common.percentile(latencies, 0.99)),
        "max_ms": _ms(max(latencies) if latencies else None),
        "requests_per_s": round(len(latencies) / wall, 2),
    }


def _ms(seconds: float | None) -> float | None:
    return round(seconds * 1000, 1) if seconds is not None else None


def run_path(name: str, requests: int, model_requests: int, folder: Path, database: dict[str, str]) -> dict[str, Any]:
    server = common.Server({**PATHS[name], "DATABASE_URL": database["DATABASE_URL"]}, folder / f"gunicorn-{name}.log")
    server.start()
    try:
        ready_s = server.wait_ready(engine=name == "model")
        count = requests if name == "rules" else model_requests
        # Warm each worker (imports, first query plans, the first model answer).
        for _ in range(4):
            common.post_json(server.port, "/api/v1/ask", {"question": common.QUESTIONS[0]}, database["token"])
        levels = []
        for clients in LEVELS:
            print(f"  {name}: {clients} clients ...", file=sys.stderr, flush=True)
            levels.append(hammer(server.port, database["token"], clients, max(count, clients)))
        return {"ready_s": round(ready_s, 2), "server": PATHS[name], "levels": levels}
    finally:
        server.stop()


def plot(summary: dict[str, Any]) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot", file=sys.stderr)
        return None
    paths = [name for name in summary if summary[name].get("levels")]
    figure, axes = plt.subplots(1, len(paths), figsize=(4 * len(paths), 3.2), dpi=100, squeeze=False)
    for axis, name in zip(axes[0], paths, strict=True):
        levels = summary[name]["levels"]
        x = [row["clients"] for row in levels]
        for key in ("p50_ms", "p95_ms", "p99_ms"):
            axis.plot(x, [row[key] for row in levels], marker="o", label=key.split("_")[0])
        if name == "rules":
            axis.axhline(30, color="grey", linestyle=":", label="target p95")
        axis.set(xlabel="concurrent clients", ylabel="ms", xscale="log", title=f"POST /api/v1/ask ({name} path)")
        if name == "model":
            axis.set_yscale("log")
        axis.set_xticks(LEVELS, labels=[str(n) for n in LEVELS])
        axis.minorticks_off()
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    figure.tight_layout()
    common.DOCS.mkdir(exist_ok=True)
    path = common.DOCS / "bench-latency.png"
    figure.savefig(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", default="rules,model")
    parser.add_argument("--requests", type=int, default=400, help="requests per level, rules path")
    parser.add_argument("--model-requests", type=int, default=32, help="requests per level, model path")
    args = parser.parse_args()
    summary: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="medbot-load-") as tmp:
        folder = Path(tmp)
        database = common.prepare_database(folder)
        for name in args.paths.split(","):
            print(f"{name} path ...", file=sys.stderr, flush=True)
            summary[name] = run_path(name, args.requests, args.model_requests, folder, database)
    picture = plot(summary)
    common.save(
        "load",
        {
            "settings": {"levels": LEVELS, "requests": args.requests, "model_requests": args.model_requests},
            "summary": summary,
            "plot": str(picture.relative_to(common.ROOT)) if picture else None,
        },
    )


if __name__ == "__main__":
    main()

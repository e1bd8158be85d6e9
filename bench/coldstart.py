"""Cold start: from launching gunicorn to ``/health/ready`` reporting the engine ready, with the model
cache already prepared; then the worker's memory after it has answered.

One gunicorn worker (production config, loopback only). Each repeat is a fresh server: process
start → master → worker fork → Django → torch/transformers import → model load and conversion.

    .venv/bin/python bench/coldstart.py
    .venv/bin/python bench/coldstart.py --repeats 1
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common


def one_start(folder: Path, database: dict[str, str], number: int) -> dict[str, Any]:
    server = common.Server(
        {"MEDBOT_LOAD_MODEL": "1", "GUNICORN_WORKERS": "1", "DATABASE_URL": database["DATABASE_URL"]},
        folder / f"gunicorn-{number}.log",
    )
    server.start()
    try:
        http_ready_s = server.wait_ready(engine=False)
        engine_ready_s = server.wait_ready(engine=True)
        _status, body = server.get("/health/ready")
        (worker,) = server.worker_pids()
        rss_ready = common.rss_mib(worker)
        answers = []
        for question in common.QUESTIONS[:3]:
            code, answer = common.post_json(server.port, "/api/v1/ask", {"question": question}, database["token"])
            answers.append({"status": code, "source": answer.get("source") if isinstance(answer, dict) else None})
        return {
            "http_ready_s": round(http_ready_s, 2),
            "engine_ready_s": round(engine_ready_s, 2),
            "engine_load_s": body["engine"].get("load_seconds"),
            "worker_rss_ready_mib": rss_ready,
            "worker_rss_after_answers_mib": common.rss_mib(worker),
            "answers": answers,
        }
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="medbot-coldstart-") as tmp:
        folder = Path(tmp)
        database = common.prepare_database(folder)
        # The cache must be warm: prepare it (a no-op when it exists) before timing anything.
        common.subprocess.run(
            [common.PYTHON, str(common.ROOT / "manage.py"), "prepare_model"],
            check=True,
            cwd=common.ROOT,
            env={**common.os.environ, "DATABASE_URL": database["DATABASE_URL"]},
        )
        # One start that is not counted: it writes the converted weights (adapter merged,
        # quantised) on a first run and fills the OS page cache, as on any server after a deploy.
        print("priming start (not counted) ...", file=sys.stderr, flush=True)
        one_start(folder, database, -1)
        starts = []
        for number in range(args.repeats):
            print(f"start {number + 1}/{args.repeats} ...", file=sys.stderr, flush=True)
            starts.append(one_start(folder, database, number))
    keys = ["http_ready_s", "engine_ready_s", "engine_load_s", "worker_rss_ready_mib", "worker_rss_after_answers_mib"]
    common.setup_django(MEDBOT_LOAD_MODEL="0")
    from inference.engine import EngineConfig

    engine = EngineConfig.from_settings()  # what the worker resolved (auto included), for the record
    common.save(
        "coldstart",
        {
            "settings": {
                "repeats": args.repeats,
                "workers": 1,
                "engine": {"kind": engine.kind, "dtype": engine.dtype, "quantize": engine.quantize},
            },
            "summary": {key: common.median([s[key] for s in starts if s[key] is not None]) for key in keys},
            "runs": starts,
        },
    )


if __name__ == "__main__":
    main()

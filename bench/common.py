"""Shared helpers for MedBot's benchmarks: machine description, fixed prompts, results files.

The benchmarks run on small shared machines where absolute numbers move ±10 % or more between
runs, so every script compares variants measured in the same run and reports ratios and medians.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOCS = ROOT / "docs"
PYTHON = sys.executable

# Fixed health questions: the greedy-agreement set and the concurrency/load traffic.
QUESTIONS = [
    "What are the common symptoms of asthma?",
    "How can I lower my blood pressure without medicine?",
    "What should I do for a mild headache?",
    "When is a fever in an adult a reason to see a doctor?",
    "How much sleep does an adult need, and why does it matter?",
    "What are the early signs of type 2 diabetes?",
    "How do I look after a small burn at home?",
    "What is the difference between a cold and the flu?",
    "How can I tell if a sprained ankle needs an X-ray?",
    "What are good ways to manage everyday stress?",
]

# A request for a long answer, so a decode-speed run rarely ends early on end-of-turn.
SPEED_QUESTION = (
    "Explain in detail how asthma affects the airways, what triggers attacks, how inhalers work, "
    "and what a person should do during an attack."
)


def setup_django(**environ: str) -> None:
    """Configure Django for an in-process benchmark (settings still come from the environment)."""
    sys.path.insert(0, str(ROOT))
    for key, value in environ.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "medbot_site.settings")
    import django

    django.setup()


def machine() -> dict[str, Any]:
    """What the figures came from: they mean little without the machine and library versions."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    try:
        import psutil

        info["ram_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    try:
        from inference.engine import cpu  # instruction-set flags and torch's CPU capability

        info["cpu"] = cpu.describe()
    except ImportError:
        pass
    for package in ("torch", "transformers", "peft", "llama_cpp", "gunicorn", "django"):
        try:
            module = __import__(package)
            info[f"{package}_version"] = getattr(module, "__version__", "?")
        except ImportError:
            info[f"{package}_version"] = None
    return info


def save(name: str, data: dict[str, Any]) -> Path:
    """Write ``bench/results/<name>.json`` (machine info included) and print it."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "finished_at": time.strftime("%Y-%m-%d %H:%M:%S %z"), "machine": machine(), **data}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(json.dumps(payload, indent=2))
    print(f"saved {path.relative_to(ROOT)}")
    return path


def median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 4) if values else None


def percentile(values: Sequence[float], share: float) -> float | None:
    """Nearest-rank percentile: with a bounded request count, no interpolation pretends to know more."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(share * len(ordered) + 0.5)))
    return ordered[rank - 1]


def rss_mib(pid: int | None = None) -> float:
    import psutil

    return round(psutil.Process(pid or os.getpid()).memory_info().rss / 2**20, 1)


def peak_rss_mib() -> float:
    """This process's peak resident memory (Linux reports ru_maxrss in KiB)."""
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run_worker(script: str, args: Sequence[str], env: dict[str, str] | None = None, timeout: float = 1800) -> Any:
    """Run ``python bench/<script> --worker ...`` in a fresh process (clean memory figures) and
    return the JSON it prints on its last line."""
    command = [PYTHON, str(ROOT / "bench" / script), "--worker", *args]
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}, cwd=ROOT
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{completed.stderr[-4000:]}")
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"{' '.join(command)} printed no result:\n{completed.stdout[-2000:]}")
    return json.loads(lines[-1])


def agreement(reference: Sequence[Sequence[int]], candidate: Sequence[Sequence[int]]) -> dict[str, Any]:
    """Share of the reference's greedy tokens that the candidate reproduced at the same position.

    Position by position over each answer, so one early divergence costs the rest of that
    answer: a strict measure. A candidate that stops early or runs on counts as disagreeing."""
    matched = total = 0
    for ref, cand in zip(reference, candidate, strict=True):
        total += max(len(ref), len(cand))
        matched += sum(a == b for a, b in zip(ref, cand, strict=False))
    return {"agreement": round(matched / total, 4) if total else None, "tokens_compared": total}


# --- a real server on loopback ------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare_database(folder: Path) -> dict[str, str]:
    """A throwaway SQLite database with the curated data and a token user, so benchmarks never
    touch the project's own db.sqlite3. Returns the environment that points at it and the token."""
    database = folder / "bench.sqlite3"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}", "MEDBOT_LOAD_MODEL": "0"}
    manage = [PYTHON, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], check=True, env=env, cwd=ROOT)
    subprocess.run([*manage, "load_curated_data", "-v", "0"], check=True, env=env, cwd=ROOT)
    script = (
        "from django.contrib.auth.models import User; from rest_framework.authtoken.models import Token; "
        "user, _ = User.objects.get_or_create(username='bench'); print(Token.objects.get_or_create(user=user)[0].key)"
    )
    token = subprocess.run(
        [*manage, "shell", "-c", script], check=True, env=env, cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return {"DATABASE_URL": env["DATABASE_URL"], "token": token.splitlines()[-1]}


class Server:
    """gunicorn with the production config (gunicorn.conf.py), bound to 127.0.0.1 only."""

    def __init__(self, environ: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.log = log
        self.environ = {
            **os.environ,
            "GUNICORN_BIND": f"127.0.0.1:{self.port}",
            "GUNICORN_MAX_REQUESTS": "0",  # no recycling in the middle of a measurement
            "MEDBOT_RATE_LIMIT": "off",
            "MEDBOT_ANSWER_CACHE_SECONDS": "0",  # every request does the real work
            "GUNICORN_LOG_LEVEL": "warning",
            **environ,
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def start(self) -> float:
        self.started_at = time.perf_counter()
        handle = self.log.open("ab")
        gunicorn = str(Path(PYTHON).parent / "gunicorn")
        self.process = subprocess.Popen(
            [gunicorn, "-c", str(ROOT / "gunicorn.conf.py"), "medbot_site.wsgi:application"],
            cwd=ROOT,
            env=self.environ,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        return self.started_at

    def get(self, path: str, timeout: float = 5) -> tuple[int, Any]:
        import http.client

        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, json.loads(response.read() or b"null")
        finally:
            connection.close()

    def wait_ready(self, engine: bool, limit: float = 300) -> float:
        """Seconds from start until /health/ready answers 200 (and, with engine=True, reports the
        engine ready). Polls every 20 ms."""
        deadline = time.perf_counter() + limit
        while time.perf_counter() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}; see {self.log}")
            try:
                status, body = self.get("/health/ready", timeout=2)
                state = (body or {}).get("engine", {}).get("state")
                if status == 200 and (not engine or state == "ready"):
                    return time.perf_counter() - self.started_at
                if engine and state == "failed":
                    raise RuntimeError(f"engine failed to load: {body}")
            except (OSError, ValueError):
                pass
            time.sleep(0.02)
        raise TimeoutError(f"not ready after {limit} s; see {self.log}")

    def worker_pids(self) -> list[int]:
        import psutil

        if self.process is None:
            return []
        return [child.pid for child in psutil.Process(self.process.pid).children()]

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


def post_json(port: int, path: str, body: dict[str, Any], token: str, timeout: float = 120) -> tuple[int, Any]:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(
            "POST", path, json.dumps(body), {"Content-Type": "application/json", "Authorization": f"Token {token}"}
        )
        response = connection.getresponse()
        raw = response.read()
        try:
            return response.status, json.loads(raw)
        except ValueError:
            return response.status, raw[:200].decode(errors="replace")
    finally:
        connection.close()

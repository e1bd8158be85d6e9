"""The remote engine against a real model server: llama.cpp's OpenAI-compatible server
(llama-cpp-python's ``llama_cpp.server``) on the packaged SmolLM2 GGUF, and MedBot's production
stack in front of it (gunicorn, ``MEDBOT_ENGINE=openai``), all on loopback.

1. gunicorn reports the engine ready only once it has probed the server (``/health/ready``);
2. questions through ``POST /api/v1/ask`` are answered through the server: source, fallback and
   latency of each (the faithfulness gate applies as with the local engine);
3. the server is killed while it is writing an answer: that answer, and the next question, must
   still be HTTP 200 from the knowledge (fallback "model error"), never a 5xx;
4. the server comes back: answers go through it again without restarting MedBot.

    .venv/bin/python bench/remote.py        # needs `pip install -r bench/requirements.txt`

Writes bench/results/remote.json.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

SERVED_NAME = "smollm2-135m-instruct"
QUESTIONS = common.QUESTIONS[:3]
# Asked when the server is killed: a long answer, so the kill lands while it is writing.
LONG_QUESTION = "What are the common symptoms of asthma, and what should I do during an attack?"
KILL_AFTER_SECONDS = 1.0


class ModelServer:
    """llama.cpp's server on the GGUF file MedBot's weights come from, one thread."""

    def __init__(self, log: Path) -> None:
        self.port = common.free_port()
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, gguf: Path) -> float:
        import http.client

        started = time.perf_counter()
        command = [common.PYTHON, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", SERVED_NAME]
        command += ["--host", "127.0.0.1", "--port", str(self.port), "--n_threads", "1", "--n_ctx", "2048"]
        self.process = subprocess.Popen(command, stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        while time.perf_counter() - started < 120:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama.cpp server exited with {self.process.returncode}; see {self.log}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                connection.request("GET", "/v1/models")
                if connection.getresponse().status == 200:
                    return time.perf_counter() - started
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"llama.cpp server not up after 120 s; see {self.log}")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


def ask(server: common.Server, token: str, question: str) -> dict[str, Any]:
    started = time.perf_counter()
    status, body = common.post_json(server.port, "/api/v1/ask", {"question": question}, token)
    answer = body if isinstance(body, dict) else {}
    message = answer.get("message") or {}
    return {
        "question": question,
        "status": status,
        "source": answer.get("source"),
        "model_tokens": message.get("tokens"),  # tokens the model wrote, even when the gate refused them
        "partial": message.get("partial"),
        "citations": len(answer.get("citations") or []),
        "seconds": round(time.perf_counter() - started, 2),
        "answer_start": (answer.get("answer") or str(body))[:120],
    }


def engine_state(server: common.Server) -> dict[str, Any]:
    _status, body = server.get("/health/ready")
    return (body or {}).get("engine", {})


def main() -> None:
    common.setup_django(MEDBOT_LOAD_MODEL="0")
    from inference import registry

    gguf = registry.gguf_path()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="medbot-remote-") as tmp:
        folder = Path(tmp)
        database = common.prepare_database(folder)
        model_server = ModelServer(folder / "llama-server.log")
        results["model_server_start_s"] = round(model_server.start(gguf), 2)
        web = common.Server(
            {
                "MEDBOT_LOAD_MODEL": "1",
                "MEDBOT_ENGINE": "openai",
                "MEDBOT_ENGINE_URL": model_server.url,
                "MEDBOT_ENGINE_MODEL": SERVED_NAME,
                "GUNICORN_WORKERS": "1",
                "DATABASE_URL": database["DATABASE_URL"],
            },
            folder / "gunicorn.log",
        )
        web.start()
        try:
            results["web_ready_s"] = round(web.wait_ready(engine=True), 2)
            results["engine_when_ready"] = engine_state(web)
            results["answers"] = [ask(web, database["token"], q) for q in QUESTIONS]

            # The server dies while it is writing an answer.
            during: dict[str, Any] = {}
            asking = threading.Thread(target=lambda: during.update(ask(web, database["token"], LONG_QUESTION)))
            asking.start()
            time.sleep(KILL_AFTER_SECONDS)
            model_server.kill()
            asking.join()
            results["answer_when_killed_mid_answer"] = during
            results["answer_with_server_down"] = ask(web, database["token"], QUESTIONS[0])
            time.sleep(3.5)  # the readiness probe notices within its 3 s cache
            results["engine_with_server_down"] = engine_state(web)

            # It comes back on the same port: MedBot uses it again without a restart.
            model_server.start(gguf)
            deadline = time.perf_counter() + 30
            while engine_state(web).get("state") != "ready" and time.perf_counter() < deadline:
                time.sleep(0.5)
            results["engine_after_restart"] = engine_state(web)
            results["answer_after_restart"] = ask(web, database["token"], QUESTIONS[1])
        finally:
            web.stop()
            model_server.kill()
            # Why each answer ended as it did: the pipeline logs gate refusals and engine errors.
            log = (folder / "gunicorn.log").read_text(errors="replace").splitlines()
            results["log_warnings"] = [line[-240:] for line in log if "WARNING" in line or "ERROR" in line][-20:]
            # Proof the answers went through the model server: the requests it logged.
            served = (folder / "llama-server.log").read_text(errors="replace")
            results["model_server_chat_requests"] = served.count("POST /v1/chat/completions")
    statuses = [
        results["answer_when_killed_mid_answer"].get("status"),
        results["answer_with_server_down"].get("status"),
        *[a["status"] for a in results["answers"]],
    ]
    results["no_5xx"] = all(isinstance(s, int) and s < 500 for s in statuses)
    common.save("remote", {"results": results})


if __name__ == "__main__":
    main()

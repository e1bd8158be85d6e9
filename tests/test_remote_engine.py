"""The remote engine against a small in-process fake of an OpenAI-compatible server: streaming,
stop reasons, the prompt it sends, timeouts, cancel, a server that dies mid-answer, readiness,
and the adapter → served model mapping. Nothing leaves 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from inference import adapters, engine, pipeline
from inference.engine import EngineConfig, GenerationError, GenerationRequest, GenerationStats
from inference.engine.remote import RemoteEngine
from inference.models import FallbackRule

ROOT = Path(__file__).resolve().parent.parent


class FakeOpenAI:
    """What the fake server does: which models it lists, the pieces it streams, and how it
    misbehaves (``delay`` seconds before each piece, ``die_after`` pieces then a dropped connection)."""

    def __init__(self) -> None:
        self.models = ["smollm2"]
        self.pieces = ["Asthma is a long-term condition ", "of the airways."]
        self.finish_reason = "stop"
        self.delay = 0.0
        self.die_after: int | None = None
        self.status = 200
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []


@pytest.fixture
def fake_openai() -> Iterator[tuple[FakeOpenAI, str]]:
    script = FakeOpenAI()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            if self.path != "/v1/models":
                self.send_error(404)
                return
            body = json.dumps({"object": "list", "data": [{"id": m, "object": "model"} for m in script.models]})
            self._send(body.encode(), "application/json")

        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            script.requests.append(json.loads(self.rfile.read(length)))
            script.headers.append(dict(self.headers))
            if script.status != 200:
                self._send(b'{"error": "overloaded"}', "application/json", script.status)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for index, piece in enumerate(script.pieces):
                if script.die_after is not None and index >= script.die_after:
                    self.connection.shutdown(2)  # the server process died mid-answer
                    return
                time.sleep(script.delay)
                self._chunk({"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
            self._chunk({"choices": [{"index": 0, "delta": {}, "finish_reason": script.finish_reason}]})
            self._chunk("[DONE]")
            self.wfile.write(b"0\r\n\r\n")

        def _chunk(self, event: Any) -> None:
            data = event if isinstance(event, str) else json.dumps(event)
            line = f"data: {data}\n\n".encode()
            try:
                self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                self.wfile.flush()
            except OSError:
                pass  # the client went away (cancel, timeout)

        def _send(self, body: bytes, kind: str, status: int = 200) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.handle_error = lambda request, address: None  # a client that hung up (cancel, timeout) is fine
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield script, f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def remote(url: str, **options: Any) -> RemoteEngine:
    config = EngineConfig(kind="openai", url=url, served_model="smollm2", api_key="test-key-not-real", **options)
    return RemoteEngine.load(config)


def test_it_streams_the_servers_pieces_and_returns_the_stop_reason(fake_openai):
    script, url = fake_openai
    stream = remote(url).stream(GenerationRequest("what is asthma?", max_new_tokens=40))
    assert list(stream) == script.pieces
    assert stream.stats.stopped_by == "eos"
    assert stream.stats.tokens == 2


def test_it_sends_medbots_prompt_with_the_grounding_and_the_key(fake_openai):
    script, url = fake_openai
    request = GenerationRequest(
        "what is asthma?", grounding="Asthma affects the airways.", max_new_tokens=40, temperature=0.0
    )
    remote(url).generate(request)
    sent = script.requests[-1]
    assert sent["model"] == "smollm2" and sent["stream"] is True and sent["max_tokens"] == 40
    assert sent["messages"][0]["role"] == "system"
    assert "Asthma affects the airways." in sent["messages"][0]["content"]
    assert sent["messages"][-1] == {"role": "user", "content": "what is asthma?"}
    assert script.headers[-1]["Authorization"] == "Bearer test-key-not-real"


def test_a_length_finish_is_reported_as_max_tokens(fake_openai):
    script, url = fake_openai
    script.finish_reason = "length"
    assert remote(url).generate(GenerationRequest("what is asthma?")).stopped_by == "max_tokens"


def test_a_server_that_is_down_raises_the_engines_error(fake_openai):
    _script, url = fake_openai
    engine_ = remote(url)
    engine_._port = 9  # the discard port: nothing listens there
    with pytest.raises(GenerationError, match="unreachable"):
        list(engine_.stream(GenerationRequest("what is asthma?")))


def test_an_http_error_raises_the_engines_error(fake_openai):
    script, url = fake_openai
    script.status = 503
    with pytest.raises(GenerationError, match="503"):
        remote(url).generate(GenerationRequest("what is asthma?"))


def test_a_server_that_dies_mid_answer_raises_the_engines_error(fake_openai):
    script, url = fake_openai
    script.die_after = 1
    stream = remote(url).stream(GenerationRequest("what is asthma?"))
    with pytest.raises(GenerationError):
        list(stream)
    assert stream.stats.stopped_by == "error"


def test_a_silent_server_times_out_with_the_engines_error(fake_openai):
    script, url = fake_openai
    script.delay = 2.0
    started = time.monotonic()
    with pytest.raises(GenerationError, match="deadline"):
        remote(url).generate(GenerationRequest("what is asthma?", timeout=0.5))
    assert time.monotonic() - started < 1.5


def test_a_slow_server_is_cut_off_at_the_deadline_keeping_what_came(fake_openai):
    script, url = fake_openai
    script.pieces = ["One. ", "Two. ", "Three. ", "Four. "]
    script.delay = 0.3
    result = remote(url).generate(GenerationRequest("what is asthma?", timeout=0.75))
    assert result.stopped_by == "timeout"
    assert result.text.startswith("One. ") and "Four" not in result.text


def test_cancel_stops_the_stream(fake_openai):
    script, url = fake_openai
    script.pieces = ["One. ", "Two. ", "Three. "]
    script.delay = 0.2
    request = GenerationRequest("what is asthma?")
    stream = remote(url).stream(request, GenerationStats())
    assert next(stream) == "One. "
    request.cancel.set()
    assert list(stream) == []
    assert stream.stats.stopped_by == "cancelled"


def test_an_active_adapter_maps_to_its_served_model_name(fake_openai):
    script, url = fake_openai
    script.models = ["smollm2", "medbot-run-7"]
    config = EngineConfig(kind="openai", url=url, served_model="smollm2")
    tuned = RemoteEngine.load(config, adapters.AdapterRef("run-7", "/adapters/run-7"))
    assert (tuned.model, tuned.version) == ("medbot-run-7", "run-7")
    tuned.generate(GenerationRequest("what is asthma?"))
    assert script.requests[-1]["model"] == "medbot-run-7"
    # An adapter the server does not serve: the base model answers, and says so in its version.
    other = RemoteEngine.load(config, adapters.AdapterRef("run-8", "/adapters/run-8"))
    assert (other.model, other.version) == ("smollm2", "remote:smollm2")


# --- through the manager, the readiness probe and the pipeline --------------------------------


@pytest.fixture
def remote_settings(fake_openai, settings, db):
    script, url = fake_openai
    settings.MEDBOT_LOAD_MODEL = True
    settings.MEDBOT_ENGINE = "openai"
    settings.MEDBOT_ENGINE_URL = url
    settings.MEDBOT_ENGINE_MODEL = "smollm2"
    settings.MEDBOT_ENGINE_API_KEY = ""
    for title, words in [("Sleep", "insomnia\nsleep"), ("Back pain", "back pain\nlumbago"), ("Acne", "spots\nacne")]:
        FallbackRule.objects.create(title=title, triggers=words, answer=f"About {title.lower()}.")
    FallbackRule.objects.create(
        title="Asthma",
        triggers="asthma\nwheezing\ninhaler",
        answer="Asthma is a long-term condition of the airways. See a doctor if your inhaler is not helping.",
    )
    script.pieces = ["Asthma is a long-term condition of the airways. ", "See a doctor if your inhaler is not helping."]
    return script


def test_readiness_probes_the_remote_server(remote_settings, client, monkeypatch):
    manager = engine.get_manager()
    manager.start(wait=True)
    assert client.get("/health/ready").json()["engine"]["state"] == "ready"
    monkeypatch.setattr(RemoteEngine, "served_models", lambda self: (_ for _ in ()).throw(GenerationError("down")))
    assert client.get("/health/ready").json()["engine"]["state"] == "failed"
    assert manager.get() is None  # the rules answer at once instead of waiting on a dead server


def test_the_remote_model_answers_through_the_pipeline(remote_settings):
    engine.get_manager().start(wait=True)
    result = pipeline.answer("what are the symptoms of asthma?")
    assert result.source == "model"
    assert result.adapter_version == "remote:smollm2"
    assert "inhaler" in remote_settings.requests[-1]["messages"][0]["content"]  # grounded


def test_a_remote_server_dying_mid_answer_gives_the_knowledge_answer_not_an_error(remote_settings):
    engine.get_manager().start(wait=True)
    remote_settings.die_after = 1
    result = pipeline.answer("what are the symptoms of asthma?")
    assert result.source != "model"
    assert result.fallback_reason == pipeline.Fallback.MODEL_ERROR


def test_a_remote_engine_config_needs_no_torch(settings):
    import subprocess
    import sys

    code = (
        "import os, sys, django; os.environ['DJANGO_SETTINGS_MODULE'] = 'medbot_site.settings';"
        "os.environ.update(MEDBOT_ENGINE='openai', MEDBOT_ENGINE_URL='http://127.0.0.1:9/v1');"
        "django.setup(); from inference.engine import EngineConfig;"
        "config = EngineConfig.from_settings(); assert config.kind == 'openai', config;"
        "from inference.engine import remote; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"

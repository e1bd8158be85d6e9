"""The remote engine: a model server speaking the OpenAI-compatible chat-completions API
(vLLM, TGI, llama.cpp's server, Ollama), streamed over Server-Sent Events.

The prompt is MedBot's own (``prompting.build_messages``: system message, grounding, history
within its budget, question), sent as chat messages; the server applies its model's chat
template. Plain ``http.client``: no torch, no HTTP library, so a web worker in front of a model
server stays small.

Adapters: the active LoRA adapter (``AdapterRef.version``, e.g. ``run-7``) is asked for as the
served model ``medbot-run-7`` when the server lists that name in ``/models`` (vLLM:
``--enable-lora --lora-modules medbot-run-7=/adapters/run-7``); otherwise the base model
``MEDBOT_ENGINE_MODEL`` serves, and a warning says so.
"""

from __future__ import annotations

import http.client
import json
import logging
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from inference import adapters
from inference.engine.config import EngineConfig
from inference.engine.types import (
    CANCELLED,
    EOS,
    ERROR,
    MAX_TOKENS,
    TIMEOUT,
    Generation,
    GenerationError,
    GenerationRequest,
    GenerationStats,
    Stream,
    collect,
)
from inference.prompting import build_messages

logger = logging.getLogger(__name__)

# How the server's finish_reason maps onto GenerationStats.stopped_by.
FINISH_REASONS = {"stop": EOS, "eos": EOS, "length": MAX_TOKENS}


class _ApproximateTokenizer:
    """Counts tokens as ~4 characters each, for the history budget only: the server tokenises
    the real prompt, and loading a tokenizer would pull transformers into every web worker."""

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": [0] * (len(text) // 4 + 1)}


def served_model_name(adapter: adapters.AdapterRef | None) -> str | None:
    """The served name for an adapter: ``medbot-<version>`` (``path:x`` becomes ``medbot-path-x``)."""
    if adapter is None:
        return None
    return "medbot-" + adapter.version.replace(":", "-").replace("/", "-")


class RemoteEngine:
    """A ``Generator`` backed by an OpenAI-compatible server. Every failure to connect, a
    timeout before the first piece, an HTTP error or a broken stream raises GenerationError."""

    def __init__(self, config: EngineConfig, model: str, version: str) -> None:
        self.config = config
        self.model = model  # the name sent as "model"
        self.version = version  # what answers are attributed to (the adapter version, or remote:<model>)
        self.history_tokens = config.history_tokens
        self._tokenizer = _ApproximateTokenizer()
        parts = urlsplit(config.url.rstrip("/"))
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise GenerationError("MEDBOT_ENGINE_URL must be an http(s) URL")
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port
        self._base_path = parts.path

    @classmethod
    def load(cls, config: EngineConfig, adapter: adapters.AdapterRef | None = None) -> RemoteEngine:
        """Probe the server and choose the served model for ``adapter``; raises GenerationError
        when the server cannot be reached."""
        probe = cls(config, config.served_model, "remote")
        served = probe.served_models()
        wanted = served_model_name(adapter)
        if wanted and wanted in served:
            return cls(config, wanted, adapter.version if adapter else "base")
        if wanted:
            logger.warning("Remote server does not serve %s; answering with the base model", wanted)
        model = config.served_model or (served[0] if served else "")
        return cls(config, model, f"remote:{model}" if model else "remote")

    # --- HTTP ----------------------------------------------------------------------------------

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
        return kind(self._host, self._port, timeout=max(timeout, 0.05))

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        return headers

    def served_models(self) -> list[str]:
        """The model names the server lists (``GET /models``): the readiness probe."""
        connection = self._connection(self.config.probe_timeout)
        try:
            connection.request("GET", f"{self._base_path}/models", headers=self._headers())
            response = connection.getresponse()
            body = response.read()
            if response.status != 200:
                raise GenerationError(f"model server answered {response.status} to /models")
            data = json.loads(body)
            return [str(item.get("id", "")) for item in data.get("data", []) if isinstance(item, dict)]
        except (OSError, http.client.HTTPException, ValueError, AttributeError) as error:
            raise GenerationError(f"model server unreachable: {error!r}") from error
        finally:
            connection.close()

    def probe(self) -> bool:
        try:
            self.served_models()
        except GenerationError as error:
            logger.warning("Remote model server failed its readiness probe: %s", error)
            return False
        return True

    # --- generation ----------------------------------------------------------------------------

    def messages(self, request: GenerationRequest) -> list[dict[str, str]]:
        return build_messages(
            self._tokenizer,  # type: ignore[arg-type]  # only its token count is used
            request.question,
            request.history,
            request.grounding,
            self.history_tokens,
        )

    def stream(self, request: GenerationRequest, stats: GenerationStats | None = None) -> Stream:
        """The answer as text pieces; the returned stream's ``stats`` say how it ended."""
        stats = stats if stats is not None else GenerationStats()
        return Stream(self._run(request, stats), stats)

    def generate(self, request: GenerationRequest) -> Generation:
        return collect(self.stream(request))

    def _run(self, request: GenerationRequest, stats: GenerationStats) -> Iterator[str]:
        deadline = time.monotonic() + request.timeout
        body: dict[str, Any] = {
            "model": self.model,
            "messages": self.messages(request),
            "stream": True,
            "max_tokens": request.max_new_tokens,
            "temperature": request.temperature,
        }
        if self.model == "":
            del body["model"]
        connection = self._connection(deadline - time.monotonic())
        pieces = 0
        try:
            try:
                connection.request(
                    "POST", f"{self._base_path}/chat/completions", json.dumps(body).encode(), self._headers()
                )
                response = connection.getresponse()
            except (OSError, http.client.HTTPException) as error:
                raise GenerationError(f"model server unreachable: {error!r}") from error
            if response.status != 200:
                raise GenerationError(f"model server answered {response.status}")
            for event in self._events(response, connection, deadline, request):
                choice = (event.get("choices") or [{}])[0]
                text = (choice.get("delta") or {}).get("content") or ""
                usage = event.get("usage") or {}
                if text:
                    pieces += 1
                    stats.tokens = pieces
                    yield text
                if usage.get("completion_tokens"):
                    stats.tokens = int(usage["completion_tokens"])
                if choice.get("finish_reason"):
                    stats.stopped_by = FINISH_REASONS.get(choice["finish_reason"], EOS)
            if not stats.stopped_by:
                stats.stopped_by = EOS
        except _Stopped as stop:
            stats.stopped_by = stop.reason
            if stop.reason == TIMEOUT and pieces == 0:
                raise GenerationError("model server sent nothing before the deadline") from None
        except GenerationError:
            stats.stopped_by = ERROR
            raise
        finally:
            connection.close()
            if not stats.stopped_by:  # the consumer stopped early (client gone)
                request.cancel.set()
                stats.stopped_by = CANCELLED

    def _events(
        self,
        response: http.client.HTTPResponse,
        connection: http.client.HTTPConnection,
        deadline: float,
        request: GenerationRequest,
    ) -> Iterator[dict[str, Any]]:
        """Server-Sent Events' ``data:`` payloads until ``[DONE]``; each read waits at most
        until the deadline, and cancel is checked between lines."""
        while True:
            if request.cancel.is_set():
                raise _Stopped(CANCELLED)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Stopped(TIMEOUT)
            if connection.sock is not None:
                connection.sock.settimeout(remaining)
            try:
                line = response.readline()
            except TimeoutError:
                raise _Stopped(TIMEOUT) from None
            except (OSError, http.client.HTTPException) as error:
                raise GenerationError(f"model server stream broke: {error!r}") from error
            if not line:
                raise GenerationError("model server closed the stream before [DONE]")
            line = line.strip()
            if not line.startswith(b"data:"):
                continue  # blank separators, comments, "event:" lines
            payload = line[5:].strip()
            if payload == b"[DONE]":
                return
            try:
                event = json.loads(payload)
            except ValueError as error:
                raise GenerationError("model server sent malformed JSON") from error
            if isinstance(event, dict) and "error" in event:
                raise GenerationError(f"model server error: {str(event['error'])[:200]}")
            if isinstance(event, dict):
                yield event


class _Stopped(Exception):
    """Internal: the deadline passed or the request was cancelled mid-stream."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

"""The gunicorn worker MedBot runs (``worker_class`` in gunicorn.conf.py): gunicorn's threaded
worker, whose own refusals answer API clients in JSON.

Some requests never reach Django: gunicorn refuses a request line longer than
``limit_request_line`` (414), headers larger than ``limit_request_field_size`` (431) and
malformed requests (400) while reading them, and writes a small HTML page itself. Everything
else under /api/ answers JSON (``chat.views`` does Django's own 400, 404, 413 and 500), so a
client parsing errors would choke on exactly these. This worker answers them in JSON, with the
same status, when the request was for the API, and leaves other paths to gunicorn's page.

The path is known even when reading the request failed: each request's first bytes are kept as
they are read (``RecordingRequest``), and the method and target are read from them, so a
request line cut off at the limit still shows it began ``GET /api/``.

This module is imported by gunicorn's master: it must not import Django or torch.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from gunicorn import util
from gunicorn.http.message import Request
from gunicorn.http.parser import RequestParser
from gunicorn.workers.gthread import ThreadWorker

# The paths whose errors are JSON, as in chat.views (the API and the original /ask endpoint).
API_PREFIXES = ("/api/", "/ask")
HEAD_BYTES = 2048  # enough of a request's start to read its method and path

DETAILS = {
    400: "Bad request.",
    403: "Forbidden.",
    414: "The request address is too long.",
    417: "Expectation failed.",
    431: "The request headers are too large.",
    500: "Something went wrong on our side. Please try again.",
    501: "Not implemented.",
}


def is_api(path: str | None) -> bool:
    return bool(path) and (path.startswith(API_PREFIXES[0]) or path == API_PREFIXES[1] or path.startswith("/ask?"))


def request_path(head: bytes) -> str | None:
    """The path of a request from its first bytes, complete or cut off: ``GET /api/v1/ask?x HTTP/1.1``
    → ``/api/v1/ask``. None when there is no request line to read."""
    line = head.removeprefix(b"\r\n").split(b"\r\n", 1)[0]
    parts = line.split(b" ", 2)
    if len(parts) < 2:
        return None
    target = parts[1].decode("latin-1")
    try:
        return urlsplit(target).path or None  # "http://host/api/..." (absolute form) included
    except ValueError:
        return target.split("?", 1)[0] or None


class _HeadRecorder:
    """Hands reads through to gunicorn's reader, keeping the first bytes of the request."""

    def __init__(self, unreader: Any) -> None:
        self._unreader = unreader
        self.head = bytearray()

    def read(self, *args: Any, **kwargs: Any) -> bytes:
        data = self._unreader.read(*args, **kwargs)
        if data and len(self.head) < HEAD_BYTES:
            self.head += data[: HEAD_BYTES - len(self.head)]
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._unreader, name)


class RecordingRequest(Request):
    """gunicorn's request, which tags a parsing error with the path the request was for."""

    def parse(self, unreader: Any) -> bytes:
        recorder = _HeadRecorder(unreader)
        try:
            return super().parse(recorder)
        except Exception as error:
            error.medbot_path = self.path or request_path(bytes(recorder.head))
            raise


class _CapturedSocket:
    """Takes what gunicorn would have written as its error page, so its status can be reused."""

    def __init__(self) -> None:
        self.data = b""

    def gettimeout(self) -> float | None:
        return None

    def setblocking(self, flag: bool) -> None:
        pass

    def sendall(self, data: bytes) -> None:
        self.data += data


def json_error(status: int, reason: str) -> bytes:
    body = json.dumps({"detail": DETAILS.get(status, reason)}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        "Cache-Control: no-store\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode("latin-1") + body


class JsonErrorThreadWorker(ThreadWorker):
    """gunicorn's ``gthread`` worker; its refusals of API requests are JSON."""

    def init_process(self) -> None:
        # gunicorn builds each HTTP/1 request from this class attribute; in this worker process
        # every request records its start, so a parsing error knows the path.
        RequestParser.mesg_class = RecordingRequest
        super().init_process()

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        path = getattr(exc, "medbot_path", None) or getattr(req, "path", None)
        if not is_api(path):
            super().handle_error(req, client, addr, exc)
            return
        # gunicorn decides the status and logs (its warning, the access line) as usual; only the
        # page it writes is replaced.
        captured = _CapturedSocket()
        super().handle_error(req, captured, addr, exc)
        status_line = captured.data.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        try:
            status, reason = int(status_line[1]), status_line[2] if len(status_line) > 2 else ""
        except (IndexError, ValueError):
            status, reason = 500, "Internal Server Error"
        try:
            util.write_nonblock(client, json_error(status, reason))
        except Exception:
            self.log.debug("Failed to send error message.")

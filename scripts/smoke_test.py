"""Production smoke test: the real gunicorn, gunicorn.conf.py and production settings, on loopback.

What a container would run, minus Docker (no engine runs in CI): gunicorn with 3 gthread workers,
MEDBOT_ENV=production, PostgreSQL and Redis. It prints PASS or FAIL per check and exits non-zero
when any check fails. .ci/run runs it after the PostgreSQL + Redis test run.

Phase 1, rules only (MEDBOT_LOAD_MODEL=0, fast): migrations, curated data and collectstatic into
a fresh database; the container health probe; the HTTPS redirect with /health/ exempt; security
headers and secure cookies; static files; POST /api/v1/ask; a streamed (SSE) answer through the
browser's session + CSRF path; the rate limit holding across workers under a concurrent burst;
an access log without client addresses or query strings; a clean stop.

Phase 2, a tiny GPT-2 built on the spot (tests/tiny_model.py): every worker loads its own
engine after the fork while the master never maps torch; a SIGTERM to the master in the middle of
a streamed answer lets the answer finish, and the question and the answer are both saved.

Needs PostgreSQL at 127.0.0.1:5432 (user postgres, trust) and Redis at 127.0.0.1:6379. Creates
and drops the database medbot_smoke and empties Redis database 2. Only loopback addresses.
"""

# Every command this script runs is our own (this interpreter, manage.py, gunicorn):
# ruff: noqa: S603
from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
RATE_LIMIT = 10  # per hour, so a ~2 s burst cannot straddle two rate windows
BURST = 30
BURST_THREADS = 6
WORKERS = 3
# Settings the smoke server must not inherit from the caller's shell.
INHERITED_PREFIXES = ("MEDBOT_", "GUNICORN_", "SECURE_", "SESSION_", "CSRF_", "WHITENOISE_")
INHERITED_NAMES = {
    "DEBUG",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "DATABASE_URL",
    "REDIS_URL",
    "STATIC_ROOT",
    "WEB_CONCURRENCY",
}
ACCESS_LINE = re.compile(r'^\[[^\]]+\] <(?P<pid>\d+)> "(?P<method>\S+) (?P<path>\S+) [^"]*" (?P<status>\d{3}) ')


# --- reporting ---------------------------------------------------------------------------------


class Report:
    """Collects PASS/FAIL lines; the exit status is non-zero when any check failed."""

    def __init__(self) -> None:
        self.failures: list[str] = []
        self.passes = 0
        self.started = time.monotonic()

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        elapsed = time.monotonic() - self.started
        print(f"{'PASS' if ok else 'FAIL'}  {name}{f': {detail}' if detail else ''}  [{elapsed:.1f} s]", flush=True)
        if ok:
            self.passes += 1
        else:
            self.failures.append(name)
        return ok


class SmokeAbort(Exception):
    """A failed step that later checks depend on."""


# --- HTTP over loopback ------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def set_cookies(self) -> dict[str, str]:
        """name -> the whole Set-Cookie line (attributes included)."""
        return {line.split("=", 1)[0]: line for line in self.headers.get_all("Set-Cookie") or []}


@dataclass
class Browser:
    """Just enough of a browser behind the TLS proxy: cookies, CSRF header, Origin."""

    port: int
    cookies: dict[str, str] = field(default_factory=dict)

    def headers(self, extra: dict[str, str] | None = None, https: bool = True) -> dict[str, str]:
        headers = {"Connection": "close", "Accept": "application/json"}
        if https:
            headers["X-Forwarded-Proto"] = "https"  # what the proxy adds
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if "csrftoken" in self.cookies:
            headers["X-CSRFToken"] = self.cookies["csrftoken"]
            headers["Origin"] = f"https://{HOST}:{self.port}"
        return {**headers, **(extra or {})}

    def keep_cookies(self, reply: Reply) -> None:
        for name, line in reply.set_cookies().items():
            self.cookies[name] = line.split(";", 1)[0].split("=", 1)[1]

    def request(
        self, method: str, path: str, payload: Any = None, https: bool = True, extra: dict[str, str] | None = None
    ) -> Reply:
        body = None if payload is None else json.dumps(payload).encode()
        headers = self.headers(extra, https)
        if body is not None:
            headers["Content-Type"] = "application/json"
        connection = http.client.HTTPConnection(HOST, self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            reply = Reply(response.status, response.headers, response.read())
        finally:
            connection.close()
        self.keep_cookies(reply)
        return reply

    def stream(self, path: str, payload: Any) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        headers = self.headers({"Accept": "text/event-stream", "Content-Type": "application/json"})
        connection = http.client.HTTPConnection(HOST, self.port, timeout=60)
        connection.request("POST", path, body=json.dumps(payload).encode(), headers=headers)
        return connection, connection.getresponse()


def sse_events(response: http.client.HTTPResponse) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event, data) pairs from a text/event-stream response, as they arrive."""
    event, data = "message", ""
    while True:
        line = response.readline()
        if not line:
            return
        text = line.decode().rstrip("\r\n")
        if not text:
            if data:
                yield event, json.loads(data)
            event, data = "message", ""
        elif text.startswith("event:"):
            event = text[6:].strip()
        elif text.startswith("data:"):
            data += text[5:].strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


# --- services and processes ---------------------------------------------------------------------


def run(command: list[str], env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return run([sys.executable, "manage.py", *args], env)


def recreate_database(admin_url: str, name: str, drop_only: bool = False) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            connection.execute(f'CREATE DATABASE "{name}"')


def maps_torch(pid: int) -> bool:
    """Whether a process has libtorch mapped (Linux): it imported torch."""
    try:
        return "libtorch" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


class Server:
    """gunicorn as the image runs it: `gunicorn --config gunicorn.conf.py`, settings from env."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "medbot_site.wsgi:application"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a failed run can be cleaned up
        )
        log.close()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def workers(self) -> list[int]:
        import psutil

        try:
            return [child.pid for child in psutil.Process(self.pid).children()]
        except psutil.NoSuchProcess:
            return []

    def log(self, offset: int = 0) -> str:
        return self.log_path.read_bytes()[offset:].decode(errors="replace")

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def stop(self, timeout: float) -> int | None:
        """SIGTERM to the master (what `docker stop` sends); its exit status, or None if it hung."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout: float) -> int | None:
        """The master's exit status, or None if it is still running after ``timeout`` seconds."""
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        """Last resort after a failure: the whole process group this script started."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


def alive(pids: list[int]) -> list[int]:
    import psutil

    running = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                running.append(pid)
        except psutil.NoSuchProcess:
            pass
    return running


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.3) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return False


def probe(env: dict[str, str], port: int) -> subprocess.CompletedProcess:
    """The container's HEALTHCHECK command, pointed at this server."""
    probe_env = {**env, "MEDBOT_HEALTHCHECK_URL": f"http://{HOST}:{port}/health/ready"}
    return run([sys.executable, "scripts/healthcheck.py", "--timeout", "3"], probe_env, timeout=10)


def engine_state(port: int) -> str:
    try:
        reply = Browser(port).request("GET", "/health/ready", https=False)
        return reply.json()["engine"]["state"] if reply.status == 200 else f"http {reply.status}"
    except (OSError, ValueError, KeyError):
        return "unreachable"


# --- the smoke test ----------------------------------------------------------------------------


class Smoke:
    def __init__(self, args: argparse.Namespace, report: Report, workdir: Path) -> None:
        self.args = args
        self.report = report
        self.workdir = workdir
        self.database_url = f"{args.admin_url.rsplit('/', 1)[0]}/{args.database}"
        self.env = self.base_env()
        self.servers: list[Server] = []
        self._django_ready = False

    def base_env(self) -> dict[str, str]:
        inherited = {
            k: v for k, v in os.environ.items() if not k.startswith(INHERITED_PREFIXES) and k not in INHERITED_NAMES
        }
        return {
            **inherited,
            "DJANGO_SETTINGS_MODULE": "medbot_site.settings",
            "MEDBOT_ENV": "production",
            "DEBUG": "0",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": f"{HOST},localhost",
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.args.redis_url,
            "STATIC_ROOT": str(self.workdir / "staticfiles"),
            "MEDBOT_MODEL_CACHE": str(self.workdir / "model-cache"),
            "MEDBOT_ADAPTER_DIR": str(self.workdir / "adapters"),
            "MEDBOT_LOAD_MODEL": "0",
            "MEDBOT_RATE_LIMIT": f"{RATE_LIMIT}/h",
            "GUNICORN_WORKERS": str(WORKERS),
            "PYTHONUNBUFFERED": "1",
        }

    # -- helpers

    def messages_of(self, conversation_id: int) -> list[Any]:
        """The saved messages of a conversation, read straight from PostgreSQL."""
        if not self._django_ready:
            os.environ.update(self.env)  # this process reads the same database as the server
            sys.path.insert(0, str(ROOT))
            import django

            django.setup()
            self._django_ready = True
        from django.db import connections

        from chat.models import Message

        connections.close_all()  # fresh reads; never a connection left over from before a stop
        return list(Message.objects.filter(conversation_id=conversation_id).order_by("id"))

    def flush_redis(self) -> None:
        import redis

        redis.Redis.from_url(self.args.redis_url).flushdb()

    def start_server(self, env: dict[str, str], name: str) -> tuple[Server, int]:
        port = free_port()
        server = Server({**env, "GUNICORN_BIND": f"{HOST}:{port}"}, self.workdir / f"{name}.log")
        server.start()
        self.servers.append(server)
        return server, port

    def check_stop(self, server: Server, name: str, workers: list[int]) -> None:
        started = time.monotonic()
        status = server.stop(timeout=45)
        left = alive(workers) if workers else []
        self.report.check(
            name,
            status == 0 and not left,
            f"exit status {status} after {time.monotonic() - started:.1f} s; workers left: {left or 'none'}",
        )

    # -- phases

    def prepare(self) -> None:
        try:
            recreate_database(self.args.admin_url, self.args.database)
            self.flush_redis()
        except Exception as error:
            self.report.check("PostgreSQL and Redis answer on loopback", False, f"{type(error).__name__}: {error}")
            raise SmokeAbort("start PostgreSQL and Redis first (.ci/run does)") from None
        steps = [("migrate", "--noinput"), ("load_curated_data",), ("collectstatic", "--noinput")]
        for step in steps:
            done = manage(self.env, *step)
            if not self.report.check(f"manage.py {' '.join(step)}", done.returncode == 0, done.stderr.strip()[-800:]):
                raise SmokeAbort(step[0])

    def phase_rules(self) -> None:
        server, port = self.start_server(self.env, "rules")
        up = wait_for(lambda: probe(self.env, port).returncode == 0, timeout=60, interval=0.5)
        workers = server.workers()
        self.report.check(
            "container health probe passes (Host from ALLOWED_HOSTS)", up, probe(self.env, port).stdout.strip()[:90]
        )
        if not up:
            raise SmokeAbort("server did not become ready:\n" + server.log()[-3000:])
        self.report.check("GUNICORN_WORKERS=3 gives 3 workers", len(workers) == WORKERS, f"workers {workers}")
        self.report.check("the master never loads torch", not maps_torch(server.pid), f"master pid {server.pid}")

        plain = Browser(port)
        redirect = plain.request("GET", "/", https=False)
        live = plain.request("GET", "/health/live", https=False)
        self.report.check(
            "plain HTTP redirects to HTTPS; /health/ does not",
            redirect.status == 301
            and (redirect.headers.get("Location") or "").startswith("https://")
            and live.status == 200,
            f"/ -> {redirect.status} {redirect.headers.get('Location')}, /health/live -> {live.status}",
        )

        browser = Browser(port)
        page = browser.request("GET", "/")
        cookies = page.set_cookies()
        headers = page.headers
        secure_headers = {
            "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "same-origin",
            "X-Content-Type-Options": "nosniff",
        }
        wrong = {name: headers.get(name) for name, value in secure_headers.items() if headers.get(name) != value}
        csp = headers.get("Content-Security-Policy") or ""
        session_cookie = cookies.get("sessionid", "")
        csrf_cookie = cookies.get("csrftoken", "")
        self.report.check(
            "page over HTTPS has HSTS, CSP, frame/referrer/nosniff headers",
            page.status == 200 and not wrong and "script-src 'self'" in csp,
            f"status {page.status}; unexpected: {wrong or 'none'}",
        )
        self.report.check(
            "session and CSRF cookies are Secure (session also HttpOnly)",
            "; Secure" in session_cookie and "HttpOnly" in session_cookie and "; Secure" in csrf_cookie,
            f"sessionid{session_cookie.partition(';')[2]} / csrftoken{csrf_cookie.partition(';')[2]}",
        )
        css = re.search(rb'href="(/static/[^"]+\.css)"', page.body)
        if css:
            static = browser.request("GET", css.group(1).decode())
            self.report.check(
                "collected static files are served (hashed name, long cache)",
                static.status == 200 and "max-age=315360000" in (static.headers.get("Cache-Control") or ""),
                f"{css.group(1).decode()} -> {static.status}, Cache-Control {static.headers.get('Cache-Control')}",
            )
        else:
            self.report.check("collected static files are served", False, "no stylesheet link on the page")

        self.check_ask(port)
        self.check_stream_rules(browser)
        self.check_rate_limit(server, port)
        self.check_log_privacy(server, port)
        self.check_stop(server, "SIGTERM stops gunicorn cleanly (exit 0, all workers gone)", workers)

    def check_ask(self, port: int) -> None:
        reply = Browser(port).request("POST", "/api/v1/ask", {"question": "What are the symptoms of asthma?"})
        body = reply.json() if reply.status == 200 else {}
        saved = self.messages_of(body["conversation"]) if body.get("conversation") else []
        self.report.check(
            "POST /api/v1/ask answers from the rules and saves both messages",
            reply.status == 200
            and bool(body.get("answer"))
            and bool(body.get("disclaimer"))
            and body.get("source") in {"rule", "unavailable"}
            and [m.role for m in saved] == ["user", "assistant"],
            f"status {reply.status}, source {body.get('source')}, saved {[m.role for m in saved]}",
        )

    def check_stream_rules(self, browser: Browser) -> None:
        created = browser.request("POST", "/api/v1/conversations/", {})
        if not self.report.check(
            "the browser session creates a conversation (CSRF + Origin over HTTPS)",
            created.status == 201,
            f"status {created.status} {created.body[:200]!r}",
        ):
            return
        conversation = created.json()["id"]
        forged = Browser(browser.port, {k: v for k, v in browser.cookies.items() if k != "csrftoken"})
        refused = forged.request("POST", f"/api/v1/conversations/{conversation}/messages/", {"content": "hello"})
        self.report.check(
            "a cookie-bearing POST without the CSRF token is refused", refused.status == 403, f"status {refused.status}"
        )
        connection, response = browser.stream(
            f"/api/v1/conversations/{conversation}/messages/", {"content": "How do I lower my blood pressure?"}
        )
        try:
            events = list(sse_events(response))
        finally:
            connection.close()
        done = [data for event, data in events if event == "done"]
        saved = self.messages_of(conversation)
        self.report.check(
            "a streamed (SSE) answer ends with the saved message",
            response.status == 200
            and response.headers.get("Content-Type", "").startswith("text/event-stream")
            and len(done) == 1
            and done[0].get("role") == "assistant"
            and [m.role for m in saved] == ["user", "assistant"],
            f"status {response.status}, events {[event for event, _ in events]}, saved {[m.role for m in saved]}",
        )

    def check_rate_limit(self, server: Server, port: int) -> None:
        self.flush_redis()  # earlier checks asked too; the burst starts from an empty count
        offset = server.log_size()

        def ask(number: int) -> Reply:
            return Browser(port).request("POST", "/api/v1/ask", {"question": f"Rate limit check {number}: asthma?"})

        with ThreadPoolExecutor(BURST_THREADS) as pool:
            replies = list(pool.map(ask, range(BURST)))
        ok = [r for r in replies if r.status == 200]
        limited = [r for r in replies if r.status == 429]
        other = [r.status for r in replies if r.status not in (200, 429)]
        waits = [r.headers.get("Retry-After") or "" for r in limited]
        waits_ok = all(w.isdigit() and 1 <= int(w) <= 3600 for w in waits)
        time.sleep(0.5)  # access log lines are written after the response
        pids = {
            m["pid"]
            for m in map(ACCESS_LINE.match, server.log(offset).splitlines())
            if m and m["path"] == "/api/v1/ask" and m["status"] in {"200", "429"}
        }
        self.report.check(
            f"rate limit {RATE_LIMIT}/h holds across workers under a burst of {BURST} from {BURST_THREADS} threads",
            len(ok) == RATE_LIMIT and len(limited) == BURST - RATE_LIMIT and waits_ok and len(pids) >= 2,
            f"{len(ok)} answered, {len(limited)} got 429 (Retry-After {sorted(set(waits))[:3]}), "
            f"served by {len(pids)} workers, other statuses {other or 'none'}",
        )

    def check_log_privacy(self, server: Server, port: int) -> None:
        offset = server.log_size()
        Browser(port).request("GET", "/health/live?token=smoke-secret-value", https=False)
        with socket.create_connection((HOST, port), timeout=5) as sock:
            sock.sendall(b"NOT-HTTP\r\n\r\n")
            sock.recv(1024)
        time.sleep(0.5)
        recent = server.log(offset)
        access_lines = [line for line in server.log().splitlines() if ACCESS_LINE.match(line)]
        leaks = [line for line in access_lines if HOST in line or "smoke-secret-value" in line]
        redacted = "Invalid request from client=" in recent and f"ip={HOST}" not in recent
        self.report.check(
            "logs hold no client addresses or query strings",
            bool(access_lines) and not leaks and redacted,
            f"{len(access_lines)} access lines, {len(leaks)} leaking; invalid-request line redacted: {redacted}",
        )

    def phase_model(self, tiny_model: Path) -> None:
        env = {
            **self.env,
            "MEDBOT_LOAD_MODEL": "1",
            "MEDBOT_BASE_MODEL": str(tiny_model),
            "MEDBOT_DTYPE": "float32",
            # The tiny model has 512 positions: the prompt (with its grounding) plus this must fit.
            "MEDBOT_MAX_NEW_TOKENS": "200",
            "MEDBOT_TORCH_THREADS": "1",
            "MEDBOT_ANSWER_CACHE_SECONDS": "0",
            "MEDBOT_RATE_LIMIT": "off",
        }
        server, port = self.start_server(env, "model")
        # Ready on many consecutive probes: the kernel spreads them over the workers.
        streak = 0

        def all_ready() -> bool:
            nonlocal streak
            streak = streak + 1 if engine_state(port) == "ready" else 0
            return streak >= 12

        ready = wait_for(all_ready, timeout=120, interval=0.1)
        workers = server.workers()
        with_torch = [pid for pid in workers if maps_torch(pid)]
        self.report.check(
            "each worker loads its engine after the fork; the master never maps torch",
            ready and len(with_torch) == WORKERS and not maps_torch(server.pid),
            f"engine ready: {ready}; workers with torch {len(with_torch)}/{len(workers)}; "
            f"master with torch: {maps_torch(server.pid)}",
        )
        if not ready:
            raise SmokeAbort("the model never became ready:\n" + server.log()[-3000:])
        self.check_stream_across_stop(server, port, workers)

    def check_stream_across_stop(self, server: Server, port: int, workers: list[int]) -> None:
        browser = Browser(port)
        browser.request("GET", "/")
        offset = server.log_size()
        for attempt in range(3):  # a worker still loading answers from the rules, without pieces
            created = browser.request("POST", "/api/v1/conversations/", {})
            conversation = created.json()["id"]
            connection, response = browser.stream(
                f"/api/v1/conversations/{conversation}/messages/",
                # Different each try (no answer cache); the count stays away from the topic's name,
                # where a number would name a numbered type ("asthma 2").
                {"content": f"Try {attempt + 1}: what are the symptoms of asthma?"},
            )
            events = sse_events(response)
            # The model is generating once the server says "writing" (only sentences the
            # faithfulness gate passed come as pieces, so a piece may come late or never).
            first = ("eof", {})
            for first in events:
                if first[0] != "status" or first[1].get("stage") == "writing":
                    break
            if first[0] == "status":
                break
            list(events)
            connection.close()
        else:
            self.report.check("the model starts writing an answer", False, f"first event {first[0]} in 3 tries")
            return
        signalled_at = time.time()
        stop_started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        after = list(events)
        connection.close()
        status = server.wait(45)
        saved = self.messages_of(conversation)
        roles = [m.role for m in saved]
        answer = saved[-1] if roles == ["user", "assistant"] else None
        finished_after_signal = answer is not None and answer.created_at.timestamp() > signalled_at
        pieces_after = sum(1 for event, _ in after if event == "piece")
        model_errors = [line for line in server.log(offset).splitlines() if "Model failed" in line]
        self.report.check(
            "the model generated the streamed answer without an error",
            not model_errors,
            model_errors[0][:300] if model_errors else "",
        )
        self.report.check(
            "SIGTERM mid-stream: the answer finishes and both messages are saved",
            any(event == "done" for event, _ in after)
            and answer is not None
            and not answer.partial
            and finished_after_signal,
            f"{pieces_after} pieces and {[e for e, _ in after if e != 'piece']} after the signal; saved {roles}; "
            f"answer saved {answer.created_at.timestamp() - signalled_at:+.2f} s after SIGTERM, "
            f"source {answer.source}"
            if answer
            else f"saved {roles}",
        )
        left = alive(workers)
        self.report.check(
            "the graceful stop exits 0 and leaves no worker behind",
            status == 0 and not left,
            f"exit status {status} after {time.monotonic() - stop_started:.1f} s; workers left: {left or 'none'}",
        )

    # -- driver

    def run(self) -> None:
        model_dir = self.workdir / "tiny-gpt2"
        # Building the tiny model imports torch (seconds): do it while phase 1 runs.
        builder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; from pathlib import Path; from tests.tiny_model import build_tiny_gpt2; "
                "build_tiny_gpt2(Path(sys.argv[1]))",
                str(model_dir),
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            self.prepare()
            self.phase_rules()
            _, errors = builder.communicate(timeout=180)
            built = builder.returncode == 0
            if not self.report.check("tiny GPT-2 built", built, "" if built else errors.strip()[-800:]):
                return
            self.phase_model(model_dir)
        finally:
            if builder.poll() is None:
                builder.kill()
                builder.wait()
            for server in self.servers:
                server.kill()
            if self._django_ready:
                from django.db import connections

                connections.close_all()
            if not self.args.keep_database:
                recreate_database(self.args.admin_url, self.args.database, drop_only=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="MedBot production smoke test (gunicorn + PostgreSQL + Redis).")
    parser.add_argument("--admin-url", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--database", default="medbot_smoke")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/2")
    parser.add_argument("--keep-database", action="store_true", help="leave medbot_smoke for inspection")
    parser.add_argument("--keep-logs", action="store_true", help="keep the temp folder with the gunicorn logs")
    args = parser.parse_args(argv)
    for url in (args.admin_url, args.redis_url):
        if "127.0.0.1" not in url and "localhost" not in url:
            parser.error(f"loopback addresses only: {url}")

    report = Report()
    workdir = Path(tempfile.mkdtemp(prefix="medbot-smoke-"))
    try:
        Smoke(args, report, workdir).run()
    except SmokeAbort as error:
        report.check("smoke test could continue", False, str(error))
    except Exception as error:  # an unexpected crash is a failure, reported like the others
        report.check("smoke test ran to the end", False, f"{type(error).__name__}: {error}")
        raise
    finally:
        if args.keep_logs or report.failures:
            print(f"logs kept in {workdir}")
        else:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
        print(f"smoke test took {time.monotonic() - report.started:.0f} s")
        print(f"smoke: {report.passes} passed, {len(report.failures)} failed")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())

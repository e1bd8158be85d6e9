"""Production packaging: check --deploy, gunicorn.conf.py, the compose file, the image, .env.example.

The running system (gunicorn + PostgreSQL + Redis) is proven by scripts/smoke_test.py and the
Dockerfile and compose file are linted by scripts/lint_deploy.sh, both from .ci/run; these tests
pin what those cannot see and run in a few seconds.
"""

from __future__ import annotations

import json
import logging
import os
import re
import runpy
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from inference.engine import get_manager

ROOT = Path(__file__).resolve().parent.parent
GUNICORN_CONF = ROOT / "gunicorn.conf.py"
SETTING_NAMES = re.compile(r'env_(?:str|bool|int|float|list|rate)\(\s*"([A-Z0-9_]+)"')
GUNICORN_NAMES = re.compile(r'(?:_env_int|environ\.get)\(\s*"([A-Z0-9_]+)"')


def env_example() -> dict[str, str]:
    """The active (uncommented) assignments in .env.example."""
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """manage.py in a clean process: only the given settings, none from the caller's shell."""
    keep = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "PYTHONPATH", "TMPDIR"}}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**keep, "DJANGO_SETTINGS_MODULE": "medbot_site.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def production_env(**changes: str) -> dict[str, str]:
    """The settings .env.example gives a deployment, with a real key and the compose URLs."""
    env = {
        **env_example(),
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DATABASE_URL": "postgres://medbot:pw@db:5432/medbot",
        "REDIS_URL": "redis://redis:6379/0",
    }
    env.update(changes)
    return {k: v for k, v in env.items() if v is not None}


# --- manage.py check --deploy ---------------------------------------------------------------------


def test_check_deploy_passes_with_the_example_production_settings():
    out = manage(production_env(), "check", "--deploy", "--fail-level", "WARNING")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "no issues" in out.stdout


def test_production_refuses_to_start_without_a_secret_key():
    env = production_env()
    del env["SECRET_KEY"]
    out = manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert out.returncode != 0
    assert "SECRET_KEY must be set when MEDBOT_ENV=production" in out.stderr


def test_check_deploy_flags_the_development_key_and_plain_http_defaults():
    env = production_env(MEDBOT_ENV="development")
    del env["SECRET_KEY"]
    out = manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert out.returncode != 0
    for check in ("security.W009", "security.W004", "security.W008", "security.W012", "security.W016"):
        assert check in out.stderr, check


# --- gunicorn.conf.py -----------------------------------------------------------------------------


def load_gunicorn_conf(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    for name in ("GUNICORN_WORKERS", "WEB_CONCURRENCY", "GUNICORN_THREADS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(GUNICORN_CONF))


@pytest.mark.parametrize(
    "env,workers,threads",
    [
        # The defaults (one worker per MEDBOT_BATCH_THREADS cores, MEDBOT_MAX_BATCH + 2 threads)
        # depend on the core count: tests/test_engine_startup.py checks them with a faked one.
        ({"WEB_CONCURRENCY": "3", "MEDBOT_MAX_BATCH": "8"}, 3, 10),
        ({"WEB_CONCURRENCY": "3", "GUNICORN_WORKERS": "5", "GUNICORN_THREADS": "8"}, 5, 8),
    ],
)
def test_gunicorn_takes_workers_and_threads_from_the_environment(monkeypatch, env, workers, threads):
    conf = load_gunicorn_conf(monkeypatch, **env)
    assert (conf["workers"], conf["threads"]) == (workers, threads)


def test_gunicorn_rejects_a_bad_worker_count_naming_the_variable(monkeypatch):
    with pytest.raises(ValueError, match="GUNICORN_WORKERS"):
        load_gunicorn_conf(monkeypatch, GUNICORN_WORKERS="many")


def test_gunicorn_streams_on_threads_and_stops_gracefully_after_an_answer_can_finish(monkeypatch, settings):
    conf = load_gunicorn_conf(monkeypatch)
    from gunicorn.util import load_class
    from gunicorn.workers.gthread import ThreadWorker

    assert issubclass(load_class(conf["worker_class"]), ThreadWorker)  # gthread, answering API errors in JSON
    assert conf["preload_app"] is False
    assert conf["control_socket_disable"] is True
    # A stop waits for answers in flight: longer than one answer may take.
    assert conf["graceful_timeout"] > settings.MEDBOT_GENERATION_TIMEOUT
    assert conf["timeout"] >= conf["graceful_timeout"]
    assert conf["max_requests"] > 0 and 0 < conf["max_requests_jitter"] < conf["max_requests"]


def test_the_gunicorn_master_imports_no_torch_and_no_django_apps():
    code = (
        "import runpy, sys; from gunicorn.util import load_class; "
        "load_class(runpy.run_path(sys.argv[1])['worker_class']); "  # the master loads the worker class too
        "print(sorted(m for m in ('torch', 'transformers', 'django.apps.registry') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(GUNICORN_CONF)], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


# --- gunicorn's own refusals -------------------------------------------------------------------------

TINY_APP = """
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "6")])
    return [b"served"]
"""


@pytest.fixture(scope="module")
def gunicorn_server(tmp_path_factory) -> Iterator[tuple[str, int]]:
    """gunicorn started with gunicorn.conf.py on a free port, serving a tiny app: what is tested
    here happens before any app runs. One worker, two threads."""
    folder = tmp_path_factory.mktemp("gunicorn")
    (folder / "tiny_app.py").write_text(TINY_APP)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    keep = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "TMPDIR"}}
    env = {
        **keep,
        "GUNICORN_WORKERS": "1",
        "GUNICORN_THREADS": "2",
        "MEDBOT_BATCH_THREADS": "1",
        "PYTHONPATH": str(ROOT),
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--config",
            str(GUNICORN_CONF),
            "--bind",
            f"127.0.0.1:{port}",
            "--pythonpath",
            str(folder),
            "tiny_app:application",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise AssertionError(f"gunicorn exited: {server.stdout.read().decode()[-2000:]}")
            try:
                if raw_request(port, b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        else:
            raise AssertionError("gunicorn did not start within a minute")
        yield server, port
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def raw_request(port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read the whole reply: (status, headers with lower-case names, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(data)
        reply = b""
        while b"\r\n\r\n" not in reply or len(reply.partition(b"\r\n\r\n")[2]) < content_length(reply):
            chunk = connection.recv(65536)
            if not chunk:
                break
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def content_length(reply: bytes) -> int:
    match = re.search(rb"(?im)^content-length:\s*(\d+)", reply.partition(b"\r\n\r\n")[0])
    return int(match.group(1)) if match else 0


BIG_HEADER = b"X-Padding: " + b"a" * 16384 + b"\r\n"


@pytest.mark.parametrize("path", [b"/api/v1/ask", b"/api/v1/conversations/?search=x", b"/ask"])
def test_gunicorn_refuses_a_16_kb_header_to_the_api_in_json(gunicorn_server, path):
    _, port = gunicorn_server
    status, headers, body = raw_request(
        port, b"POST " + path + b" HTTP/1.1\r\nHost: localhost\r\n" + BIG_HEADER + b"\r\n"
    )
    assert status == 431
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"detail": "The request headers are too large."}


def test_gunicorn_refuses_an_overlong_api_address_in_json(gunicorn_server):
    _, port = gunicorn_server
    status, headers, body = raw_request(port, b"GET /api/v1/" + b"a" * 8192 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert (status, headers["content-type"]) == (414, "application/json")
    assert json.loads(body) == {"detail": "The request address is too long."}


def test_gunicorn_still_answers_other_paths_with_its_page_and_serves_normal_requests(gunicorn_server):
    _, port = gunicorn_server
    status, headers, _ = raw_request(port, b"GET / HTTP/1.1\r\nHost: localhost\r\n" + BIG_HEADER + b"\r\n")
    assert (status, headers["content-type"]) == (431, "text/html")
    assert raw_request(port, b"GET /api/v1/ask HTTP/1.1\r\nHost: localhost\r\n\r\n")[2] == b"served"


def access_line(conf: dict[str, Any]) -> str:
    """One access-log line as gunicorn formats it, for a request that carries a client address,
    a proxy's forwarded address, a query string, a referrer and a user agent."""
    from gunicorn.config import Config

    cfg = Config()
    cfg.set("access_log_format", conf["access_log_format"])
    logger = conf["PrivacyLogger"](cfg)
    environ = {
        "REMOTE_ADDR": "203.0.113.7",
        "REQUEST_METHOD": "POST",
        "RAW_URI": "/api/v1/ask?email=alice@example.org",
        "PATH_INFO": "/api/v1/ask",
        "QUERY_STRING": "email=alice@example.org",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_REFERER": "https://medbot.example.org/?q=chest+pain",
        "HTTP_USER_AGENT": "Mozilla/5.0 (private device)",
    }
    request = SimpleNamespace(headers=[("X-FORWARDED-FOR", "198.51.100.23"), ("REFERER", environ["HTTP_REFERER"])])
    response = SimpleNamespace(status="200 OK", headers=[("Content-Type", "application/json")], sent=512)
    atoms = logger.atoms_wrapper_class(logger.atoms(response, request, environ, timedelta(milliseconds=42)))
    return cfg.access_log_format % atoms


def test_the_access_log_keeps_path_status_and_timing_but_no_address_query_or_referrer(monkeypatch):
    line = access_line(load_gunicorn_conf(monkeypatch))
    assert '"POST /api/v1/ask HTTP/1.1" 200 512 42ms' in line
    for private in ("203.0.113.7", "198.51.100.23", "alice@example.org", "chest+pain", "private device"):
        assert private not in line


def test_gunicorn_error_log_replaces_client_addresses_with_a_stable_pseudonym(monkeypatch):
    conf = load_gunicorn_conf(monkeypatch)
    redact = conf["RedactClientAddress"]()

    def logged(message: str, *args: Any) -> str:
        record = logging.LogRecord("gunicorn.error", logging.WARNING, __file__, 1, message, args, None)
        assert redact.filter(record)
        return record.getMessage()

    first = logged("Invalid request from ip=%s: %s", "203.0.113.7", "Invalid HTTP request line: 'x'")
    again = logged("Invalid request from ip=203.0.113.7: Invalid HTTP method")
    other = logged("Invalid request from ip=2001:db8::1: Invalid HTTP method")
    assert "203.0.113.7" not in first + again and "2001:db8" not in other
    assert first.startswith("Invalid request from client=") and first.endswith(": Invalid HTTP request line: 'x'")
    assert first.split(":")[0] == again.split(":")[0] != other.split(":")[0]
    assert logged("Booting worker with pid: %s", 42) == "Booting worker with pid: 42"


def test_each_worker_starts_loading_its_engine_once_it_is_up(monkeypatch):
    conf = load_gunicorn_conf(monkeypatch)
    started: list[bool] = []
    monkeypatch.setattr(get_manager(), "start", lambda: started.append(True))
    monkeypatch.setattr("inference.pipeline.retriever.index", lambda: None)  # no database here
    conf["post_worker_init"](SimpleNamespace(log=logging.getLogger("gunicorn.error")))
    assert started == [True]


def test_a_failing_engine_start_does_not_stop_the_worker(monkeypatch, caplog):
    conf = load_gunicorn_conf(monkeypatch)

    def broken() -> None:
        raise RuntimeError("database down")

    monkeypatch.setattr(get_manager(), "start", broken)
    with caplog.at_level(logging.WARNING, logger="medbot-test"):
        conf["post_worker_init"](SimpleNamespace(log=logging.getLogger("medbot-test")))
    assert "first question will retry" in caplog.text


def exit_worker(conf: dict[str, Any], code: int | None, booted: bool = True) -> bool:
    """Run the worker_exit hook as gunicorn does, in the ``finally`` of a SystemExit; whether
    it left the process early (os._exit)."""

    class Left(BaseException):
        pass

    def fake_exit(status: int) -> None:
        assert status == 0
        raise Left

    worker = SimpleNamespace(booted=booted)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "_exit", fake_exit)
        patch.setattr(logging, "shutdown", lambda: None)
        try:
            try:
                sys.exit(code)
            finally:
                conf["worker_exit"](None, worker)
        except Left:
            return True
        except SystemExit:
            return False
    raise AssertionError("unreachable")


def test_a_cleanly_exiting_worker_skips_the_slow_interpreter_teardown(monkeypatch):
    conf = load_gunicorn_conf(monkeypatch)
    assert exit_worker(conf, 0) is True
    assert exit_worker(conf, None) is True


def test_a_worker_that_failed_keeps_its_exit_status_for_the_master(monkeypatch):
    conf = load_gunicorn_conf(monkeypatch)
    assert exit_worker(conf, 3) is False  # WORKER_BOOT_ERROR: the master halts
    assert exit_worker(conf, 0, booted=False) is False


# --- docker-compose.prod.yml ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.prod.yml").read_text())


def test_web_waits_for_healthy_services_and_a_finished_migration(compose):
    services = compose["services"]
    conditions = {name: dep["condition"] for name, dep in services["web"]["depends_on"].items()}
    assert conditions == {
        "db": "service_healthy",
        "redis": "service_healthy",
        "migrate": "service_completed_successfully",
    }
    for name, service in services.items():
        for dep, how in service.get("depends_on", {}).items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            if how["condition"] == "service_healthy":
                assert services[dep]["healthcheck"]["test"], f"{dep} has no healthcheck"
    assert services["web"]["healthcheck"]["test"] == ["CMD", "python", "scripts/healthcheck.py"]


def test_the_migrate_service_migrates_loads_curated_data_and_exits(compose):
    migrate = compose["services"]["migrate"]
    command = " ".join(migrate["command"])
    assert "manage.py migrate --noinput" in command and "manage.py load_curated_data" in command
    assert command.index("migrate --noinput") < command.index("load_curated_data")
    assert migrate["restart"] == "no"
    assert migrate["env_file"] == compose["services"]["web"]["env_file"] == ".env"


def test_compose_runs_postgresql_16_and_redis_7_with_data_and_adapters_on_volumes(compose):
    services = compose["services"]
    assert services["db"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")
    assert "pgdata:/var/lib/postgresql/data" in services["db"]["volumes"]
    adapter_dir = dockerfile_env()["MEDBOT_ADAPTER_DIR"]
    assert f"adapters:{adapter_dir}" in services["web"]["volumes"]
    assert {"pgdata", "adapters"} <= set(compose["volumes"])


def test_docker_waits_longer_than_gunicorns_graceful_timeout_before_killing_web(compose, monkeypatch):
    grace = compose["services"]["web"]["stop_grace_period"]
    assert grace.endswith("s")
    assert int(grace[:-1]) > load_gunicorn_conf(monkeypatch)["graceful_timeout"]


# --- Dockerfile, .dockerignore, .env.example ------------------------------------------------------


def dockerfile_env() -> dict[str, str]:
    """ENV values of the Dockerfile's final stage (continuation lines joined)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    final = text.rsplit("\nFROM ", 1)[1]
    values: dict[str, str] = {}
    for line in final.splitlines():
        if line.startswith("ENV "):
            values.update(pair.split("=", 1) for pair in line[4:].split())
    return values


def test_the_image_is_production_runs_as_a_non_root_user_and_serves_with_gunicorn():
    final = (ROOT / "Dockerfile").read_text().rsplit("\nFROM ", 1)[1]
    users = re.findall(r"^USER (\S+)", final, re.M)
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert dockerfile_env()["MEDBOT_ENV"] == "production"
    assert 'CMD ["gunicorn", "--config", "gunicorn.conf.py", "medbot_site.wsgi:application"]' in final
    assert 'CMD ["python", "scripts/healthcheck.py"]' in final


def test_the_image_builds_the_model_cache_and_static_files_where_settings_look():
    final = (ROOT / "Dockerfile").read_text().rsplit("\nFROM ", 1)[1]
    assert "manage.py prepare_model" in final and "manage.py collectstatic --noinput" in final
    assert final.index("prepare_model") < final.index("ENV MEDBOT_ENV=production")
    assert dockerfile_env()["MEDBOT_MODEL_CACHE"] == "/app/model-cache"


def test_secrets_and_local_state_stay_out_of_the_build_context():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".env", ".git", ".venv", "model-cache", "adapters", "db.sqlite3", "staticfiles"} <= ignored


def test_env_example_lists_every_setting():
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    read = set(SETTING_NAMES.findall((ROOT / "medbot_site" / "settings.py").read_text()))
    read |= set(GUNICORN_NAMES.findall(GUNICORN_CONF.read_text()))
    assert len(read) > 40
    assert read - documented == set()


@pytest.mark.parametrize(
    "allowed,host",
    [
        ("medbot.example.org,localhost", "medbot.example.org"),
        (".example.org", "example.org"),
        ("*", "localhost"),
    ],
)
def test_the_health_probe_names_a_host_that_allowed_hosts_accepts(allowed, host):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from healthcheck import probe_host
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    assert probe_host(allowed) == host

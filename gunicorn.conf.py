"""Gunicorn settings for MedBot in production: the Docker image runs ``gunicorn`` with this file.

Why it looks like this:

- ``gthread`` workers. An answer can stream as Server-Sent Events for as long as
  MEDBOT_GENERATION_TIMEOUT. A sync worker serves one request at a time and is killed when a
  request outlives ``timeout``; a threaded worker keeps heart-beating from its main loop while
  its threads stream, serves health checks and history meanwhile, and its engine decodes every
  answer in flight together (up to MEDBOT_MAX_BATCH): sizes below.
- One engine per worker, loaded after the fork. No ``preload_app``: the master never imports
  Django's apps or torch (forking a process whose torch thread pools are running is unsafe, and
  a copy-on-write model is soon copied anyway). Each worker starts loading its own model in a
  background thread as soon as it is up, answering from the rules until the model is ready.
- Graceful stops. SIGTERM (``docker stop``, a rolling deploy) lets answers in flight finish for
  up to ``graceful_timeout``; the compose file gives the container longer than that.
- API errors are JSON, even gunicorn's own. Requests gunicorn refuses while reading them (a
  request line or headers over its limits, a malformed request) never reach Django; the worker
  class (``medbot_site.gunicorn_worker``) answers those in JSON for /api/ paths, with the same
  status, and with gunicorn's HTML page elsewhere.
- Privacy. The access log holds method, path without query string, status, size, duration and
  worker pid: no client addresses, no query strings, no bodies, no referrers. Gunicorn's own
  "Invalid request from ip=..." warning gets a keyed hash instead of the address.

Every value can be changed from the environment; see .env.example.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import sys
from typing import Any

from gunicorn.glogging import Logger


def _env_int(name: str, default: int, minimum: int = 1) -> int:
    """An integer from the environment; a bad value stops gunicorn with a message naming it."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value


# Inside a container the port must be reachable from the other containers; the compose file
# publishes it on the host's loopback only, for the TLS proxy.
bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")

# One batching engine per worker. Its decode thread runs up to MEDBOT_MAX_BATCH answers in one
# forward pass on MEDBOT_BATCH_THREADS torch threads, so:
# - threads ≥ MEDBOT_MAX_BATCH, or a worker never has a full batch in flight (4 threads used to
#   cap a batch of 8); two more carry health checks and history while a full batch streams;
# - workers × MEDBOT_BATCH_THREADS ≤ cores: OpenMP threads sharing a core slow each other down
#   far more than one worker batching twice the requests. A remote engine (MEDBOT_ENGINE=openai)
#   runs no torch here: one worker per core.
# WEB_CONCURRENCY is the common platform convention; GUNICORN_WORKERS wins when both are set.
# Cores this process may use (a container's CPU set), not the host's.
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
MAX_BATCH = _env_int("MEDBOT_MAX_BATCH", 8)
BATCH_THREADS = _env_int("MEDBOT_BATCH_THREADS", min(2, CORES))
LOCAL_ENGINE = os.environ.get("MEDBOT_ENGINE", "local").strip() in ("", "local")
DEFAULT_WORKERS = max(1, CORES // BATCH_THREADS) if LOCAL_ENGINE else CORES
workers = _env_int("GUNICORN_WORKERS", _env_int("WEB_CONCURRENCY", DEFAULT_WORKERS))
threads = _env_int("GUNICORN_THREADS", MAX_BATCH + 2)
if LOCAL_ENGINE and workers * BATCH_THREADS > CORES:
    print(
        f"gunicorn.conf.py: {workers} workers × {BATCH_THREADS} batch threads exceed {CORES} cores; "
        "answers will be slower than with fewer workers",
        file=sys.stderr,
    )
# gunicorn's gthread worker, whose own refusals (request line or headers too large, malformed
# requests: answered before Django sees them) are JSON for API paths instead of an HTML page.
worker_class = "medbot_site.gunicorn_worker.JsonErrorThreadWorker"

# With gthread, `timeout` only fires when a worker's main loop stops heart-beating (stuck in C
# code, say), not for a long stream. graceful_timeout is longer than one bounded answer
# (MEDBOT_GENERATION_TIMEOUT, 20 s by default) so a stop finishes the answers in flight.
timeout = _env_int("GUNICORN_TIMEOUT", 60)
graceful_timeout = _env_int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = 5

# Recycle workers now and then to bound slow memory growth; the jitter keeps them from all
# reloading their model at the same moment (meanwhile answers come from the rules).
max_requests = _env_int("GUNICORN_MAX_REQUESTS", 1000, minimum=0)
max_requests_jitter = _env_int("GUNICORN_MAX_REQUESTS_JITTER", 100, minimum=0)

preload_app = False
# Gunicorn's runtime control socket (gunicornc) is not needed under Docker, which manages the
# process with signals; without it no socket is left in $HOME, shared by every instance there.
control_socket_disable = True
# The heartbeat file on a container's overlay filesystem can stall; /dev/shm is memory.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108

accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# %(U)s is the path without the query string; %(p)s is the worker's pid. No %(h)s (client
# address), %(r)s (request line with query), %(f)s (referrer) or %(a)s (user agent).
access_log_format = '%(t)s %(p)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms'

# One random key per start of the master, inherited by its workers: the same client reads the
# same within a run, and the hashes cannot be joined across restarts or reversed.
_CLIENT_KEY = secrets.token_bytes(16)
_IP_FIELD = re.compile(r"\bip=(\S+?)(:?)(?=\s|$)")


def pseudonym(address: str) -> str:
    """A short keyed hash standing in for a client address in log lines."""
    return hashlib.blake2b(address.encode(), key=_CLIENT_KEY, digest_size=6).hexdigest()


class RedactClientAddress(logging.Filter):
    """Rewrites ``ip=<address>`` in gunicorn's error log to ``client=<pseudonym>``."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "ip=" in message:
            record.msg = _IP_FIELD.sub(lambda match: f"client={pseudonym(match.group(1))}{match.group(2)}", message)
            record.args = ()
        return True


_REDACT = RedactClientAddress()


class PrivacyLogger(Logger):
    """Gunicorn's logger with the client-address filter on its error log."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        self.error_log.addFilter(_REDACT)  # idempotent: the same filter object on each reload


logger_class = PrivacyLogger


def post_worker_init(worker: Any) -> None:
    """Start loading this worker's engine and knowledge index in the background.

    This runs in the worker after the fork and after the WSGI app (so Django) is loaded:
    ``post_fork`` would be too early, since the engine asks the database which adapter is
    active. A failure here must not stop the worker: the first question retries the load and
    the rules answer meanwhile."""
    try:
        from inference.pipeline import warm_up

        warm_up()  # the model, the knowledge index and triage, in background threads
    except Exception:
        worker.log.warning("Could not start warming up; the first question will retry", exc_info=True)


def worker_exit(server: Any, worker: Any) -> None:
    """After a clean exit, leave without the interpreter's teardown.

    With torch and transformers imported, a worker's final garbage collection walks millions
    of objects: 4 to 15 s of CPU per worker on two cores, measured in the smoke test, spent
    during every rolling deploy and max_requests recycle while the replacement worker loads its
    model. By now a clean exit has nothing left to do (answers finished, heartbeat file closed)
    but flush the logs. Any other exit (a boot or app-load error, whose exit status tells the
    master to give up) takes the normal path."""
    exiting = sys.exc_info()[1]
    if not (getattr(worker, "booted", False) and isinstance(exiting, SystemExit) and exiting.code in (0, None)):
        return
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)

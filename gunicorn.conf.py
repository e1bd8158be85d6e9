"""Gunicorn settings for MedBot in production: the Docker image runs ``gunicorn`` with this file.

Why it looks like this:

- ``gthread`` workers. An answer can stream as Server-Sent Events for as long as
  MEDBOT_GENERATION_TIMEOUT. A sync worker serves one request at a time and is killed when a
  request outlives ``timeout``; a threaded worker keeps heart-beating from its main loop while
  its threads stream, serves health checks and history meanwhile, and its engine still runs one
  generation at a time.
- One engine per worker, loaded after the fork. No ``preload_app``: the master never imports
  Django's apps or torch (forking a process whose torch thread pools are running is unsafe, and
  a copy-on-write model is soon copied anyway). Each worker starts loading its own model in a
  background thread as soon as it is up, answering from the rules until the model is ready.
- Graceful stops. SIGTERM (``docker stop``, a rolling deploy) lets answers in flight finish for
  up to ``graceful_timeout``; the compose file gives the container longer than that.
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

# Each worker holds its own model (a few hundred MB for SmolLM2-135M), so workers cost memory;
# threads are cheap and carry the slow streamed answers. WEB_CONCURRENCY is the common
# platform convention; GUNICORN_WORKERS wins when both are set.
workers = _env_int("GUNICORN_WORKERS", _env_int("WEB_CONCURRENCY", 2))
threads = _env_int("GUNICORN_THREADS", 4)
worker_class = "gthread"

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
    """Start loading this worker's engine in the background.

    This runs in the worker after the fork and after the WSGI app (so Django) is loaded:
    ``post_fork`` would be too early, since the engine asks the database which adapter is
    active. A failure here must not stop the worker: the first question retries the load and
    the rules answer meanwhile."""
    try:
        from inference.engine import get_manager

        get_manager().start()
    except Exception:
        worker.log.warning("Could not start loading the model; the first question will retry", exc_info=True)


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

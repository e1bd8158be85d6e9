"""MedBot settings. Every value comes from the environment (see the README's table) with a
development default; production values are checked by ``manage.py check --deploy``."""

from __future__ import annotations

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from medbot_site.env import (
    cache_config,
    database_config,
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_rate,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent

# Where this process runs. "development" (the default: `make run`, tests, CI) serves plain
# http://127.0.0.1; "production" (set by the Docker image) sits behind a TLS proxy and turns on
# the HTTPS-only defaults below and the checks that refuse to start half-configured. DEBUG is a
# separate switch, off unless asked for in both.
MEDBOT_ENV = env_str("MEDBOT_ENV", "development")
if MEDBOT_ENV not in {"development", "production"}:
    raise ImproperlyConfigured(f"MEDBOT_ENV must be development or production, got {MEDBOT_ENV!r}")
PRODUCTION = MEDBOT_ENV == "production"

DEBUG = env_bool("DEBUG", False)
if PRODUCTION and DEBUG:
    # Debug pages show settings, code and tracebacks to anyone who triggers an error.
    raise ImproperlyConfigured(
        "DEBUG must be off when MEDBOT_ENV=production; unset DEBUG or use MEDBOT_ENV=development"
    )
SECRET_KEY = env_str("SECRET_KEY", "")
if not SECRET_KEY:
    if PRODUCTION:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when MEDBOT_ENV=production; make one with "
            "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
        )
    # Development only: a fixed key keeps sessions across restarts. check --deploy flags it
    # (security.W009: the django-insecure- prefix).
    SECRET_KEY = "django-insecure-medbot-development-key-do-not-use-in-production"  # noqa: S105

# Production has no default: a forgotten ALLOWED_HOSTS would answer every request with 400.
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [] if PRODUCTION else ["127.0.0.1", "localhost", "[::1]", "testserver"])
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set when MEDBOT_ENV=production, e.g. medbot.example.org")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from our own static files (the CSP allows only 'self')
    "knowledge",
    "inference",
    "training",
    "chat",
    *(["bench"] if (BASE_DIR / "bench" / "apps.py").exists() else []),  # `evaluate`; not in the image
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "medbot_site.middleware.SecurityHeadersMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "medbot_site.urls"
WSGI_APPLICATION = "medbot_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": database_config(env_str("DATABASE_URL"), str(BASE_DIR))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL")
CACHES = cache_config(REDIS_URL)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        # Hashed, compressed files need collectstatic, which the image runs and `make run` doesn't.
        if env_bool("MEDBOT_MANIFEST_STATIC", PRODUCTION)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Serve from the finders when collectstatic has not run (development and tests).
WHITENOISE_USE_FINDERS = env_bool("WHITENOISE_USE_FINDERS", not PRODUCTION)
WHITENOISE_AUTOREFRESH = DEBUG

# --- Security: HTTPS-only in production, plain http://127.0.0.1 in development ----------------
# The TLS proxy in front of gunicorn must set (and overwrite) X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", PRODUCTION)
# Health checks come from the orchestrator over plain HTTP inside the network.
SECURE_REDIRECT_EXEMPT = [r"^health/"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if PRODUCTION else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", PRODUCTION)
# Preloading commits the whole domain to HTTPS in browsers for months and is hard to undo, so
# it stays the operator's choice; its check --deploy reminder (W021) is silenced below.
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", PRODUCTION)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", PRODUCTION)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 60 * 60 * 24 * 365, minimum=60)
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Our own middleware sends this header on every HTML response: no inline scripts, ever.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)

# --- REST framework ---------------------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first: a valid token authenticates without CSRF (a cross-site page cannot send one),
    # a wrong token is a 401, and everything else is the session, with CSRF enforced.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "chat.authentication.CsrfEnforcedSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_PARSER_CLASSES": ["chat.parsers.LimitedJSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "chat.api.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # ?format= is ours (conversation export), not DRF's renderer override.
    "URL_FORMAT_OVERRIDE": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "MedBot API",
    "DESCRIPTION": "Ask health questions and keep conversations. Educational information, not a diagnosis.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # /api/docs/ loads Swagger UI from drf-spectacular-sidecar's static files, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "medbot_site.openapi.add_error_responses",
    ],
}

# --- Rate limits (django-ratelimit, counted in the shared cache) -----------------------------
MEDBOT_RATE_LIMIT = env_rate("MEDBOT_RATE_LIMIT", "30/m")
# Writes that cost a row, per account (or address when anonymous); sign-ups per address.
MEDBOT_CONVERSATION_RATE = env_rate("MEDBOT_CONVERSATION_RATE", "20/m")
MEDBOT_FEEDBACK_RATE = env_rate("MEDBOT_FEEDBACK_RATE", "30/m")
MEDBOT_SIGNUP_RATE = env_rate("MEDBOT_SIGNUP_RATE", "10/h")
# New anonymous sessions from page loads, per address; past it the page is served without one
# (a session is still made at the visitor's first question).
MEDBOT_NEW_SESSION_RATE = env_rate("MEDBOT_NEW_SESSION_RATE", "20/m")
# Failed logins allowed per address, and per account name from anywhere; past either, every
# attempt is refused, the right password included, until the window ends. The per-account limit
# lets anyone lock an account's log-in for an hour: higher, so that takes effort.
MEDBOT_LOGIN_FAILURES_PER_ADDRESS = env_rate("MEDBOT_LOGIN_FAILURES_PER_ADDRESS", "10/15m")
MEDBOT_LOGIN_FAILURES_PER_ACCOUNT = env_rate("MEDBOT_LOGIN_FAILURES_PER_ACCOUNT", "30/h")
# Accounts younger than this also count their questions against their address, so opening new
# accounts does not reset the limit. 0 turns it off.
MEDBOT_YOUNG_ACCOUNT_HOURS = env_int("MEDBOT_YOUNG_ACCOUNT_HOURS", 24, minimum=0)
RATELIMIT_USE_CACHE = "default"
# When the cache (Redis) is down we fail open: answers matter more than the limit, and the
# outage is logged. See README "Rate limits".
RATELIMIT_FAIL_OPEN = True
# Header holding the client IP set by a trusted reverse proxy, e.g. HTTP_X_FORWARDED_FOR.
# Empty: use REMOTE_ADDR (the right choice when no proxy sits in front).
MEDBOT_TRUSTED_PROXY_HEADER = env_str("MEDBOT_TRUSTED_PROXY_HEADER", "")
RATELIMIT_IP_META_KEY = "chat.ratelimits.client_ip" if MEDBOT_TRUSTED_PROXY_HEADER else None
# security.W021: HSTS preload is opt-in (see SECURE_HSTS_PRELOAD above).
SILENCED_SYSTEM_CHECKS = ["security.W021"] + (["django_ratelimit.W001"] if not REDIS_URL else [])

# After a cache (Redis) failure each process skips the cache this long instead of waiting on a
# hung server for every call; logged once per interval (medbot_site/cache_guard.py).
MEDBOT_CACHE_BACKOFF_SECONDS = env_float("MEDBOT_CACHE_BACKOFF_SECONDS", 30.0, minimum=0.0)
# JSON request bodies: a question is at most 2,000 characters, so these are far above any real use.
MEDBOT_MAX_JSON_BYTES = env_int("MEDBOT_MAX_JSON_BYTES", 64 * 1024, minimum=1024)
MEDBOT_MAX_JSON_DEPTH = env_int("MEDBOT_MAX_JSON_DEPTH", 32, minimum=2)

# --- MedBot ----------------------------------------------------------------------------------
MEDBOT_LOAD_MODEL = env_bool("MEDBOT_LOAD_MODEL", True)
# Where answers are generated: "local" (this process's LoRA engine) or "openai" (a model server
# speaking the OpenAI-compatible chat-completions API: vLLM, TGI, llama.cpp's server, Ollama).
MEDBOT_ENGINE = env_choice("MEDBOT_ENGINE", "local", ("local", "openai"))
MEDBOT_ENGINE_URL = env_str("MEDBOT_ENGINE_URL", "")  # e.g. http://model-server:8080/v1
MEDBOT_ENGINE_MODEL = env_str("MEDBOT_ENGINE_MODEL", "")  # served name of the base model ("" = the server's first)
MEDBOT_ENGINE_API_KEY = env_str("MEDBOT_ENGINE_API_KEY", "")
if MEDBOT_ENGINE == "openai" and not MEDBOT_ENGINE_URL:
    raise ImproperlyConfigured("MEDBOT_ENGINE=openai needs MEDBOT_ENGINE_URL (e.g. http://model-server:8080/v1)")
MEDBOT_BASE_MODEL = env_str("MEDBOT_BASE_MODEL", "smollm2-135m-instruct")
MEDBOT_ADAPTER = env_str("MEDBOT_ADAPTER", "")
MEDBOT_MODEL_CACHE = Path(env_str("MEDBOT_MODEL_CACHE", str(BASE_DIR / "model-cache")))
MEDBOT_ADAPTER_DIR = Path(env_str("MEDBOT_ADAPTER_DIR", str(BASE_DIR / "adapters")))
MEDBOT_MAX_NEW_TOKENS = env_int("MEDBOT_MAX_NEW_TOKENS", 160, minimum=1, maximum=2048)
MEDBOT_TEMPERATURE = env_float("MEDBOT_TEMPERATURE", 0.0, minimum=0.0, maximum=2.0)
MEDBOT_GENERATION_TIMEOUT = env_float("MEDBOT_GENERATION_TIMEOUT", 20.0, minimum=0.5)
MEDBOT_HISTORY_TOKENS = env_int("MEDBOT_HISTORY_TOKENS", 384, minimum=0)
MEDBOT_TORCH_THREADS = env_int("MEDBOT_TORCH_THREADS", 1, minimum=1)
# auto: chosen for the CPU at hand (inference/engine/cpu.py): bf16 + int4 where AVX-512 with
# native bf16 makes them fast, plain fp32 elsewhere (never a path slower than fp32).
MEDBOT_DTYPE = env_choice("MEDBOT_DTYPE", "auto", ("auto", "float32", "bfloat16"))
# Weight-only quantisation of the linear layers (activations stay MEDBOT_DTYPE): int4 (groups of
# 32, the grid SmolLM2's packaged GGUF weights already sit on), int8 (per output channel), or none.
# Speed and agreement with fp32 for each are in BENCHMARKS.md.
MEDBOT_QUANTIZE = env_choice("MEDBOT_QUANTIZE", "auto", ("auto", "none", "int8", "int4"))
# Requests in flight at once that share one forward pass per token (1 turns batching off).
MEDBOT_MAX_BATCH = env_int("MEDBOT_MAX_BATCH", 8, minimum=1, maximum=64)
# Torch threads for prompt prefill and for two or more requests decoding together (a single
# request decodes on MEDBOT_TORCH_THREADS). Default: two cores, as measured best for one worker
# per two cores. Keep workers × threads ≤ cores: OpenMP threads sharing a core slow each other.
MEDBOT_BATCH_THREADS = env_int("MEDBOT_BATCH_THREADS", min(2, os.cpu_count() or 1), minimum=1)
MEDBOT_MAX_QUESTION_CHARS = 2000
MEDBOT_ANSWER_CACHE_SECONDS = env_int("MEDBOT_ANSWER_CACHE_SECONDS", 3600, minimum=0)
MEDBOT_EMERGENCY_NUMBER = env_str("MEDBOT_EMERGENCY_NUMBER", "911")
MEDBOT_CRISIS_LINE = env_str(
    "MEDBOT_CRISIS_LINE", "call or text 988 (Suicide & Crisis Lifeline, US), available 24 hours a day"
)
# Triage's learned second opinion (scikit-learn, trained from the shipped concepts): off leaves the rules alone.
MEDBOT_TRIAGE_CLASSIFIER = env_bool("MEDBOT_TRIAGE_CLASSIFIER", True)
MEDBOT_AUDIT_LOG = env_bool("MEDBOT_AUDIT_LOG", False)
MEDBOT_AUDIT_LOG_TEXT = env_bool("MEDBOT_AUDIT_LOG_TEXT", False)
MEDBOT_AUDIT_SALT = env_str("MEDBOT_AUDIT_SALT", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {"without_traceback": {"()": "medbot_site.log_filters.WithoutTraceback"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "console_short": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["without_traceback"]},
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.request": {"level": "ERROR"},
        # A bad Host header: one line, not a traceback per probing bot.
        "django.security.DisallowedHost": {"handlers": ["console_short"], "level": "WARNING", "propagate": False},
    },
}

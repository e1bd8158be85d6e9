"""Settings come from the environment through typed helpers that reject bad values."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from chat.ratelimits import client_ip
from medbot_site.env import cache_config, database_config, env_bool, env_float, env_int, env_list, env_rate

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("raw,expected", [("1", True), ("true", True), ("YES", True), ("0", False), ("off", False)])
def test_it_reads_booleans(raw, expected):
    assert env_bool("X", not expected, {"X": raw}) is expected


def test_it_uses_the_default_when_a_variable_is_unset_or_blank():
    assert env_bool("X", True, {}) is True
    assert env_int("X", 7, {"X": "  "}) == 7
    assert env_list("X", ["a"], {}) == ["a"]


@pytest.mark.parametrize(
    "helper,raw",
    [
        (lambda e: env_bool("X", False, e), "maybe"),
        (lambda e: env_int("X", 1, e), "ten"),
        (lambda e: env_int("X", 1, e, minimum=1), "0"),
        (lambda e: env_float("X", 1.0, e), "fast"),
        (lambda e: env_float("X", 1.0, e), "nan"),
        (lambda e: env_rate("X", "30/m", e), "thirty"),
        (lambda e: env_rate("X", "30/m", e), "30/week"),
    ],
)
def test_it_rejects_bad_values_naming_the_variable(helper, raw):
    with pytest.raises(ImproperlyConfigured, match="X"):
        helper({"X": raw})


def test_it_reads_rate_limits_and_lets_them_be_switched_off():
    assert env_rate("X", "30/m", {"X": "5/s"}) == "5/s"
    assert env_rate("X", "30/m", {"X": "off"}) == ""


def test_it_uses_sqlite_when_no_database_url_is_set():
    config = database_config(None, "/srv/medbot")
    assert config == {"ENGINE": "django.db.backends.sqlite3", "NAME": "/srv/medbot/db.sqlite3"}


def test_it_reads_postgresql_from_database_url():
    config = database_config("postgres://medbot:secret@db.internal:5433/medbot", "/srv")
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert (config["HOST"], config["PORT"], config["NAME"], config["USER"]) == ("db.internal", 5433, "medbot", "medbot")
    assert config["OPTIONS"]["connect_timeout"] == 3


def test_it_rejects_a_database_url_it_cannot_parse():
    with pytest.raises(ImproperlyConfigured):
        database_config("nosuchdb://x/y", "/srv")


def test_it_uses_local_memory_cache_without_redis_url():
    assert cache_config(None)["default"]["BACKEND"].endswith("LocMemCache")


def test_it_uses_redis_from_redis_url():
    config = cache_config("redis://127.0.0.1:6379/2")["default"]
    assert config["BACKEND"] == "django_redis.cache.RedisCache"
    assert config["LOCATION"] == "redis://127.0.0.1:6379/2"


def test_it_rejects_a_redis_url_without_a_redis_scheme():
    with pytest.raises(ImproperlyConfigured, match="REDIS_URL"):
        cache_config("http://127.0.0.1:6379")


def test_a_rejected_redis_url_is_not_repeated_with_its_password():
    # The attack review: the error, which lands in logs, held "http://:S3cretRedisPw@redis:6379/0".
    for url in ("http://:S3cretRedisPw@redis:6379/0", ":S3cretRedisPw@redis:6379/0"):
        with pytest.raises(ImproperlyConfigured) as raised:
            cache_config(url)
        assert "S3cret" not in str(raised.value)


def _settings_in_subprocess(env: dict[str, str], expression: str) -> subprocess.CompletedProcess:
    code = f"import django; django.setup(); from django.conf import settings; print({expression})"
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DEBUG"}}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "medbot_site.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


HTTPS_SETTINGS = (
    "settings.DEBUG, settings.SECURE_SSL_REDIRECT, settings.SESSION_COOKIE_SECURE, "
    "settings.CSRF_COOKIE_SECURE, settings.SECURE_HSTS_SECONDS, settings.SECURE_HSTS_INCLUDE_SUBDOMAINS"
)
PRODUCTION = {"MEDBOT_ENV": "production", "SECRET_KEY": "k" * 60, "ALLOWED_HOSTS": "medbot.example.org"}


def test_development_is_the_default_with_debug_off_and_plain_http_working():
    """`make run` serves http://127.0.0.1:8000 with nothing set: no redirect to https, cookies that
    travel over http, no HSTS pinning the browser to https; DEBUG stays off all the same."""
    out = _settings_in_subprocess({"MEDBOT_ENV": "", "SECRET_KEY": ""}, f"settings.MEDBOT_ENV, {HTTPS_SETTINGS}")
    assert out.stdout.strip() == "development False False False False 0 False", out.stderr


def test_production_turns_on_the_https_redirect_secure_cookies_and_hsts():
    out = _settings_in_subprocess(PRODUCTION, HTTPS_SETTINGS)
    assert out.stdout.strip() == "False True True True 31536000 True", out.stderr


def test_production_defaults_can_be_overridden_one_at_a_time():
    out = _settings_in_subprocess({**PRODUCTION, "SECURE_SSL_REDIRECT": "0"}, HTTPS_SETTINGS)
    assert out.stdout.strip() == "False False True True 31536000 True", out.stderr


def test_production_refuses_to_start_without_allowed_hosts():
    out = _settings_in_subprocess({**PRODUCTION, "ALLOWED_HOSTS": ""}, "1")
    assert out.returncode != 0
    assert "ALLOWED_HOSTS must be set when MEDBOT_ENV=production" in out.stderr


def test_production_refuses_to_start_with_debug_on():
    out = _settings_in_subprocess({**PRODUCTION, "DEBUG": "1"}, "1")
    assert out.returncode != 0
    assert "DEBUG must be off when MEDBOT_ENV=production" in out.stderr


def test_development_may_turn_debug_on():
    out = _settings_in_subprocess({"MEDBOT_ENV": "development", "DEBUG": "1"}, "settings.DEBUG")
    assert out.stdout.strip() == "True", out.stderr


def test_an_unknown_medbot_env_stops_start_up():
    out = _settings_in_subprocess({"MEDBOT_ENV": "staging"}, "1")
    assert out.returncode != 0
    assert "MEDBOT_ENV must be development or production" in out.stderr


def test_environment_reaches_databases_and_caches():
    out = _settings_in_subprocess(
        {"DATABASE_URL": "postgres://u@h:5432/d", "REDIS_URL": "redis://127.0.0.1:6379/3"},
        "settings.DATABASES['default']['ENGINE'], settings.CACHES['default']['BACKEND']",
    )
    assert out.stdout.strip() == "django.db.backends.postgresql django_redis.cache.RedisCache", out.stderr


def test_a_bad_setting_stops_start_up_with_a_clear_error():
    out = _settings_in_subprocess({"MEDBOT_MAX_NEW_TOKENS": "lots"}, "1")
    assert out.returncode != 0
    assert "MEDBOT_MAX_NEW_TOKENS must be an integer" in out.stderr


def test_env_example_describes_the_forwarded_for_entry_the_rate_limits_read(rf, settings):
    settings.MEDBOT_TRUSTED_PROXY_HEADER = "HTTP_X_FORWARDED_FOR"
    request = rf.get("/", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7", REMOTE_ADDR="10.0.0.2")
    assert client_ip("ask", request) == "203.0.113.7"  # the proxy's entry, not the client's forgery
    text = " ".join((ROOT / ".env.example").read_text().split())
    assert "reads its right-most entry" in text and "left-most" not in text

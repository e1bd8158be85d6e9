"""Typed readers for settings that come from the environment.

Each helper returns the default when the variable is unset or empty and raises
``ImproperlyConfigured`` naming the variable when a value cannot be parsed, so a
typo in a deployment fails at start-up instead of silently meaning something else.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _raw(name: str, environ: Mapping[str, str] | None) -> str | None:
    value = (os.environ if environ is None else environ).get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def env_str(name: str, default: str = "", environ: Mapping[str, str] | None = None) -> str:
    value = _raw(name, environ)
    return default if value is None else value


def env_bool(name: str, default: bool, environ: Mapping[str, str] | None = None) -> bool:
    value = _raw(name, environ)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false, yes/no, on/off), got {value!r}")


def env_int(
    name: str,
    default: int,
    environ: Mapping[str, str] | None = None,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    value = _raw(name, environ)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {number}")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum}, got {number}")
    return number


def env_float(
    name: str,
    default: float,
    environ: Mapping[str, str] | None = None,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
) -> float:
    value = _raw(name, environ)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}") from None
    if number != number:  # NaN
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}")
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {number}")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum}, got {number}")
    return number


def env_choice(name: str, default: str, choices: Sequence[str], environ: Mapping[str, str] | None = None) -> str:
    """One of ``choices`` (case-sensitive); anything else names the variable and the choices."""
    value = _raw(name, environ)
    if value is None:
        return default
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


def env_list(name: str, default: list[str], environ: Mapping[str, str] | None = None) -> list[str]:
    """A comma-separated list; blank items are dropped."""
    value = _raw(name, environ)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_rate(name: str, default: str, environ: Mapping[str, str] | None = None) -> str:
    """A django-ratelimit rate such as ``30/m``; ``0`` or ``off`` disables limiting (returns "")."""
    value = _raw(name, environ)
    if value is None:
        return default
    if value.lower() in {"0", "off", "none"}:
        return ""
    count, _, period = value.partition("/")
    if not count.isdigit() or int(count) < 1 or not period or period[-1] not in "smhd":
        raise ImproperlyConfigured(f"{name} must look like 30/m (count/s|m|h|d), or 'off'; got {value!r}")
    unit = period[:-1]
    if unit and not unit.isdigit():
        raise ImproperlyConfigured(f"{name} must look like 30/m (count/s|m|h|d), or 'off'; got {value!r}")
    return value


def database_config(url: str | None, base_dir: str, conn_max_age: int = 60) -> dict:
    """DATABASES['default'] from a URL, or a SQLite file in the project when no URL is given."""
    import dj_database_url

    if not url:
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": os.path.join(base_dir, "db.sqlite3")}
    try:
        config = dj_database_url.parse(url, conn_max_age=conn_max_age, conn_health_checks=True)
    except ValueError as error:
        raise ImproperlyConfigured(f"DATABASE_URL is not a database URL we understand: {error}") from None
    if not config.get("ENGINE"):
        raise ImproperlyConfigured("DATABASE_URL names an unknown database scheme")
    if config["ENGINE"] == "django.db.backends.postgresql":
        # Fail fast when the database is gone instead of hanging a worker (and /health/ready).
        config.setdefault("OPTIONS", {})["connect_timeout"] = 3
    return config


def cache_config(url: str | None) -> dict:
    """CACHES from REDIS_URL; local memory (one process only) when unset."""
    if not url:
        return {
            "default": {
                "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                "LOCATION": "medbot",
            }
        }
    if not url.startswith(("redis://", "rediss://", "unix://")):
        # Only the scheme is repeated: the rest of the URL may hold a password, and this lands in logs.
        got = f"a {url.split('://', 1)[0][:20]}:// URL" if "://" in url else "no scheme"
        raise ImproperlyConfigured(f"REDIS_URL must start with redis://, rediss:// or unix://; got {got}")
    return {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": "medbot",
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_CONNECT_TIMEOUT": 1,
                "SOCKET_TIMEOUT": 1,
            },
        }
    }

"""Container health probe: exit 0 when this container's /health/ready answers 200.

The Docker HEALTHCHECK and the compose file run it. Standard library only, so the image needs no
curl. It names a host from ALLOWED_HOSTS in its Host header: in production ALLOWED_HOSTS lists
the public name only, and a probe that says ``Host: 127.0.0.1`` would get 400 DisallowedHost and
mark a healthy container sick. /health/ is exempt from the HTTPS redirect, so plain HTTP is fine.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8000/health/ready"


def probe_host(allowed_hosts: str) -> str:
    """The first ALLOWED_HOSTS entry usable as a Host header ('.example.org' means example.org
    and its subdomains; '*' names no host), or localhost."""
    for entry in allowed_hosts.split(","):
        host = entry.strip().lstrip(".")
        if host and host != "*":
            return host
    return "localhost"


def check(url: str, host: str, timeout: float) -> tuple[bool, str]:
    """Whether ``url`` answered 200, and a one-line reason for the container's health log."""
    request = urllib.request.Request(url, headers={"Host": host, "Accept": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (our own URL)
            return response.status == 200, f"{response.status} {response.read(300).decode(errors='replace')}"
    except urllib.error.HTTPError as error:
        return False, f"{error.code} {error.read(300).decode(errors='replace')}"
    except OSError as error:
        return False, f"unreachable: {error}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("MEDBOT_HEALTHCHECK_URL", DEFAULT_URL))
    parser.add_argument("--timeout", type=float, default=4.0)
    args = parser.parse_args(argv)
    healthy, detail = check(args.url, probe_host(os.environ.get("ALLOWED_HOSTS", "")), args.timeout)
    print(detail)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())

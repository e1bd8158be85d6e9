from __future__ import annotations

from typing import Any

from drf_spectacular.authentication import SessionScheme
from rest_framework.authentication import SessionAuthentication
from rest_framework.request import Request


class CsrfEnforcedSessionAuthentication(SessionAuthentication):
    """Session authentication that checks CSRF for anonymous browsers too.

    DRF only checks CSRF for logged-in session users, but an anonymous visitor also owns
    data through their session cookie. Any request that carries cookies is checked, whatever
    its headers: this class only runs when token authentication did not succeed (it comes
    first in DEFAULT_AUTHENTICATION_CLASSES, and a wrong token is a 401 there), so a request
    that skips CSRF is one a cross-site page could not have made. Requests with no cookies at
    all carry no session and are not checked."""

    def authenticate(self, request: Request) -> tuple[Any, None] | None:
        django_request = request._request
        if django_request.COOKIES:
            self.enforce_csrf(request)
        user = getattr(django_request, "user", None)
        if not user or not user.is_active or not user.is_authenticated:
            return None
        return (user, None)


class CsrfEnforcedSessionScheme(SessionScheme):
    """Documents this class in the OpenAPI schema as the session cookie, like DRF's own (without
    it drf-spectacular warns, and check --deploy --fail-level WARNING fails)."""

    target_class = CsrfEnforcedSessionAuthentication

"""Log-in forms that refuse attempts past the failed-login limits (``chat.ratelimits``)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm

from chat import ratelimits


def in_minutes(seconds: int) -> str:
    minutes = max(1, round(seconds / 60))
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


class ThrottledLoginMixin:
    """Every attempt is counted as a failure *before* the password is checked, with one atomic
    cache increment, and refused when that count is past the limit; a successful attempt gives
    its place back. Checking first and counting after the failure let a burst of concurrent
    attempts all pass the check before any was counted. A refused attempt costs no password
    hash, and the right password is refused too."""

    throttled_for: int | None = None

    def clean(self) -> dict[str, Any]:
        if self.request is None:
            return super().clean()
        attempt = ratelimits.begin_login_attempt(self.request, self.cleaned_data.get("username") or "")
        if attempt.wait is not None:
            ratelimits.release(attempt)  # refused before any password check: not a failure
            self.throttled_for = attempt.wait
            raise forms.ValidationError(
                "Too many failed log-in attempts. Try again in %(wait)s.",
                code="throttled",
                params={"wait": in_minutes(attempt.wait)},
            )
        try:
            cleaned = super().clean()
        except forms.ValidationError:
            if self.get_user() is None:
                raise  # a wrong password: the attempt stays counted
            ratelimits.release(attempt)  # the right password, for an account that may not sign in here
            raise
        ratelimits.release(attempt)  # signed in, or no password given: not a failure
        return cleaned


class ThrottledAuthenticationForm(ThrottledLoginMixin, AuthenticationForm):
    pass


class ThrottledAdminAuthenticationForm(ThrottledLoginMixin, AdminAuthenticationForm):
    pass

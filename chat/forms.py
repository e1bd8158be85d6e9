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
    """Checked before the password, so a locked-out attempt costs no password hash and the right
    password is refused too. Failures are counted by the ``user_login_failed`` receiver."""

    throttled_for: int | None = None

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username") or ""
        if self.request is not None:
            wait = ratelimits.login_wait(self.request, username)
            if wait is not None:
                self.throttled_for = wait
                raise forms.ValidationError(
                    "Too many failed log-in attempts. Try again in %(wait)s.",
                    code="throttled",
                    params={"wait": in_minutes(wait)},
                )
        return super().clean()


class ThrottledAuthenticationForm(ThrottledLoginMixin, AuthenticationForm):
    pass


class ThrottledAdminAuthenticationForm(ThrottledLoginMixin, AdminAuthenticationForm):
    pass

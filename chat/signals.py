from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver


@receiver(user_logged_in)
def move_anonymous_history(sender: type, request: Any, user: Any, **kwargs: Any) -> None:
    from chat.services import adopt_anonymous_conversations

    if request is not None and hasattr(request, "session"):
        adopt_anonymous_conversations(user, request.session)


@receiver(user_login_failed)
def count_failed_login(sender: str, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    """Every failed password check, from any form, counts towards the failed-login limits."""
    from chat import ratelimits

    if request is not None:
        ratelimits.record_login_failure(request, str(credentials.get("username", "")))

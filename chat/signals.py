from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver


@receiver(user_logged_in)
def move_anonymous_history(sender: type, request: Any, user: Any, **kwargs: Any) -> None:
    from chat.services import adopt_anonymous_conversations

    if request is not None and hasattr(request, "session"):
        adopt_anonymous_conversations(user, request.session.get("medbot_previous_session"))

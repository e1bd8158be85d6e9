"""``{% engine_state as state %}``: the engine's state for server-rendered pages (the chat shows a
note while the model is loading)."""

from __future__ import annotations

from django import template

register = template.Library()


@register.simple_tag
def engine_state() -> str:
    """off, loading, ready or failed (never starts or probes anything)."""
    from inference.engine import get_manager

    return get_manager().state

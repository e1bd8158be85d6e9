"""Curated data changed: tell every worker through the shared cache."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from inference import versions
from inference.models import Concept, Disclaimer, EmergencyRule, FallbackRule
from inference.triage import TRIAGE


@receiver([post_save, post_delete], sender=FallbackRule)
@receiver([post_save, post_delete], sender=EmergencyRule)
@receiver([post_save, post_delete], sender=Concept)  # answer-cache keys carry the rules version
def rules_changed(sender: type, **kwargs: Any) -> None:
    versions.bump(versions.RULES)


@receiver([post_save, post_delete], sender=Concept)
@receiver([post_save, post_delete], sender=EmergencyRule)
def triage_changed(sender: type, **kwargs: Any) -> None:
    # Every worker recompiles its concepts and red-flag rules on its next message.
    versions.bump(TRIAGE)


@receiver([post_save, post_delete], sender=Disclaimer)
def disclaimer_changed(sender: type, **kwargs: Any) -> None:
    versions.bump(versions.DISCLAIMER)

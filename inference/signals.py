"""Curated data changed: tell every worker through the shared cache."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from inference import versions
from inference.models import Disclaimer, EmergencyRule, FallbackRule


@receiver([post_save, post_delete], sender=FallbackRule)
@receiver([post_save, post_delete], sender=EmergencyRule)
def rules_changed(sender: type, **kwargs: Any) -> None:
    versions.bump(versions.RULES)


@receiver([post_save, post_delete], sender=Disclaimer)
def disclaimer_changed(sender: type, **kwargs: Any) -> None:
    versions.bump(versions.DISCLAIMER)

"""Which LoRA adapter the engine should serve.

``MEDBOT_ADAPTER`` (a folder) wins when set; otherwise the training app's active run. The
training app is looked up through the app registry so that ``inference`` does not import it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.db import DatabaseError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AdapterRef:
    version: str
    path: str


def resolve_adapter_path(stored: str) -> Path:
    """Runs store their folder relative to MEDBOT_ADAPTER_DIR so the volume can move."""
    path = Path(stored)
    return path if path.is_absolute() else Path(settings.MEDBOT_ADAPTER_DIR) / path


def active_adapter() -> AdapterRef | None:
    if settings.MEDBOT_ADAPTER:
        path = Path(settings.MEDBOT_ADAPTER)
        return AdapterRef(version=f"path:{path.name}", path=str(path))
    if not apps.is_installed("training"):
        return None
    run_model = apps.get_model("training", "TrainingRun")
    try:
        row = run_model.objects.filter(active=True).values_list("pk", "adapter_path").first()
    except DatabaseError:
        logger.warning("Could not read the active adapter; keeping the base model", exc_info=True)
        return None
    if row is None:
        return None
    pk, stored = row
    path = str(resolve_adapter_path(stored)) if stored else ""
    if not path or not (Path(path) / "adapter_config.json").exists():
        logger.warning("Active run %s has no adapter at %r; serving the base model", pk, path)
        return None
    return AdapterRef(version=f"run-{pk}", path=path)

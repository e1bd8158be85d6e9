"""Knowledge changed: tell every worker to rebuild its search index (through the shared cache).

Bulk imports use bulk_create/bulk_update, which send no signals: the importer bumps the version
once at the end instead. Deleting a source cascades to thousands of passages, each with its own
signal, so a change inside a transaction bumps the version once, when the transaction commits.
"""

from __future__ import annotations

import threading
from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from knowledge import versions
from knowledge.models import KnowledgeSource, Passage

_pending = threading.local()


def _bump() -> None:
    _pending.active = False
    versions.bump(versions.KNOWLEDGE)


@receiver([post_save, post_delete], sender=KnowledgeSource)
@receiver([post_save, post_delete], sender=Passage)
def knowledge_changed(sender: type, **kwargs: Any) -> None:
    if getattr(_pending, "active", False):
        return
    _pending.active = True
    transaction.on_commit(_bump)  # at once outside a transaction

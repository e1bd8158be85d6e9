"""Knowledge changed: tell every worker to rebuild its search index (through the shared cache).

Bulk imports use bulk_create/bulk_update, which send no signals: the importer bumps the version
once at the end instead. One ``delete()`` can cascade to thousands of passages (a whole source),
each sending its own signal; those bump the version once per deletion, not once per passage.
"""

from __future__ import annotations

import threading
from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from knowledge import versions
from knowledge.models import Alias, KnowledgeSource, Passage

_last_deletion = threading.local()


@receiver([post_save, post_delete], sender=KnowledgeSource)
@receiver([post_save, post_delete], sender=Passage)
@receiver([post_save, post_delete], sender=Alias)
def knowledge_changed(sender: type, **kwargs: Any) -> None:
    origin = kwargs.get("origin")  # post_delete only: the instance or queryset delete() was called on
    if origin is not None:
        if getattr(_last_deletion, "origin", None) is origin:
            return
        _last_deletion.origin = origin
    versions.bump(versions.KNOWLEDGE)

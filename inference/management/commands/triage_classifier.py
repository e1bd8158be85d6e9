"""Train (or load) the triage classifier now and cache it, so the first message after a deploy is fast."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand

from inference.triage import classifier


class Command(BaseCommand):
    help = "Train the triage classifier from the shipped concepts and phrasings and cache it on disk."

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.monotonic()
        classifier.get()
        classifier.scorer()  # and the plain scorer serving workers read, without scikit-learn
        path = classifier._path(classifier.cache_key())
        self.stdout.write(f"triage classifier ready in {time.monotonic() - started:.1f} s: {path}")

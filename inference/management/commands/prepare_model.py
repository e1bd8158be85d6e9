import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from inference import registry


class Command(BaseCommand):
    help = "Prepare the base model's local cache (de-quantise the packaged GGUF once). Safe to repeat."

    def handle(self, *args, **options) -> None:
        if not settings.MEDBOT_LOAD_MODEL:
            self.stdout.write("MEDBOT_LOAD_MODEL is off: nothing to prepare.")
            return
        if settings.MEDBOT_ENGINE != "local":
            self.stdout.write(f"MEDBOT_ENGINE={settings.MEDBOT_ENGINE}: the model server holds the weights.")
            return
        started = time.monotonic()
        try:
            folder = registry.model_folder(settings.MEDBOT_BASE_MODEL, Path(settings.MEDBOT_MODEL_CACHE))
        except registry.ModelNotAvailable as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"Model ready in {folder} ({time.monotonic() - started:.1f} s)")

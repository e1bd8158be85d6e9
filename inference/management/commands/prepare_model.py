import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from inference import registry


class Command(BaseCommand):
    help = (
        "Prepare the base model's local cache (de-quantise the packaged GGUF once) and, where MEDBOT_DTYPE or "
        "MEDBOT_QUANTIZE is auto, time the engine's candidate settings on this machine once (about a minute) so "
        "that auto picks the fastest that agrees with fp32. Safe to repeat."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--retime", action="store_true", help="Time the candidates again even if done.")
        parser.add_argument("--no-timing", action="store_true", help="Only prepare the cache.")

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
        if options["no_timing"] or "auto" not in (settings.MEDBOT_DTYPE, settings.MEDBOT_QUANTIZE):
            return
        from inference import adapters
        from inference.engine import EngineConfig, choice

        try:
            adapter = adapters.active_adapter()
        except DatabaseError as error:  # no database yet (an image build): nothing to time against
            self.stdout.write(f"Engine settings not timed: the database is not ready ({error}).")
            return
        version = adapter.version if adapter else ""
        config = EngineConfig.from_settings(dtype="float32", quantize="none")
        known = choice.cached(config.cache_root, config.base_model, version)
        if known and not options["retime"]:
            self.stdout.write(
                f"Engine settings for this CPU ({version or 'base model'}): {known[0]} + {known[1]} (timed before)"
            )
            return
        self.stdout.write(f"Timing the engine's settings on this CPU ({version or 'base model'}), once …")
        chosen = choice.choose(config, adapter, say=self.stdout.write)
        self.stdout.write(
            f"Engine settings for this CPU: {chosen.dtype} + {chosen.quantize} "
            f"(kept in {choice.choice_file(config.cache_root, config.base_model, version)})"
        )

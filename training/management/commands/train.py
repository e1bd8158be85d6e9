"""``manage.py train``: fine-tune a LoRA adapter on the enabled training examples.

Thin on purpose: the flags map onto ``training.pipeline.TrainConfig`` and the work happens in
``training.pipeline.run`` (which tests call directly)."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from inference.registry import ModelNotAvailable
from training.pipeline import TrainConfig, TrainingError, run, summary

DEFAULTS = TrainConfig()


class Command(BaseCommand):
    help = (
        "Fine-tune a LoRA adapter on the enabled training examples (CPU, float32), then compare it with the base "
        "model on held-out questions. The adapter is saved as <MEDBOT_ADAPTER_DIR>/run-<id>; --activate makes "
        "running servers switch to it if it beat the base (or with --force REASON)."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--base", default="", help="Base model name or folder (default: MEDBOT_BASE_MODEL).")
        parser.add_argument("--epochs", type=float, default=DEFAULTS.epochs, help="Passes over the data (default 1).")
        parser.add_argument("--rank", type=int, default=DEFAULTS.rank, help="LoRA rank r (default 16).")
        parser.add_argument("--alpha", type=int, default=DEFAULTS.alpha, help="LoRA alpha (default 32).")
        parser.add_argument(
            "--top-layers", type=float, default=DEFAULTS.top_layers, help="Share of the top layers LoRA adapts (0.5)."
        )
        parser.add_argument("--dropout", type=float, default=DEFAULTS.dropout, help="LoRA dropout (default 0.05).")
        parser.add_argument("--lr", type=float, default=DEFAULTS.learning_rate, help="Peak learning rate (2e-4).")
        parser.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size, help="Examples per step (4).")
        parser.add_argument(
            "--max-length", type=int, default=DEFAULTS.max_length, help="Tokens per example, prompt + answer (640)."
        )
        parser.add_argument("--max-examples", type=int, default=None, help="Train on a seeded sample of this many.")
        parser.add_argument("--max-steps", type=int, default=DEFAULTS.max_steps, help="Stop after this many steps.")
        parser.add_argument(
            "--evaluations",
            type=int,
            default=DEFAULTS.evaluations,
            help="Loss evaluations in the run (4), plus one first.",
        )
        parser.add_argument("--threads", type=int, default=0, help="Torch CPU threads (default: every core).")
        parser.add_argument("--seed", type=int, default=DEFAULTS.seed, help="Seed for split, init and order (42).")
        parser.add_argument("--output", default="", help="Adapter root folder (default: MEDBOT_ADAPTER_DIR).")
        parser.add_argument(
            "--activate",
            action="store_true",
            help="Serve the new adapter once training succeeds, if its evaluation beats the base model.",
        )
        parser.add_argument(
            "--force",
            default="",
            metavar="REASON",
            help="With --activate: activate even if the adapter scored below the base; the reason is recorded.",
        )
        parser.add_argument(
            "--eval-questions",
            type=int,
            default=DEFAULTS.eval_questions,
            help="Held-out questions the adapter and the base model answer at the end (24; 0 = none).",
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar (logs, CI).")

    def handle(self, *args: Any, **options: Any) -> None:
        config = TrainConfig(
            base=options["base"],
            epochs=options["epochs"],
            rank=options["rank"],
            top_layers=options["top_layers"],
            alpha=options["alpha"],
            dropout=options["dropout"],
            learning_rate=options["lr"],
            batch_size=options["batch_size"],
            max_length=options["max_length"],
            max_examples=options["max_examples"],
            max_steps=options["max_steps"],
            evaluations=options["evaluations"],
            threads=options["threads"],
            seed=options["seed"],
            output=options["output"],
            activate=options["activate"],
            force=options["force"],
            eval_questions=options["eval_questions"],
            progress_bar=not options["no_progress"],
        )
        try:
            training_run = run(config, progress=self.stdout.write)
        except (TrainingError, ModelNotAvailable) as error:
            raise CommandError(str(error)) from error
        except KeyboardInterrupt as error:
            stopped = f"Training stopped ({error or 'Ctrl-C'}); no adapter was saved."
            raise CommandError(stopped, returncode=130) from None
        except Exception as error:
            raise CommandError(f"Training failed: {error!r} (details in the run's notes).") from error
        self.stdout.write(self.style.SUCCESS(summary(training_run)))

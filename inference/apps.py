from __future__ import annotations

import os
import sys

from django.apps import AppConfig


def is_serving_process(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> bool:
    """True in the process that serves requests under ``manage.py runserver``: the autoreloader's
    child (Django marks it with RUN_MAIN=true), or the only process with ``--noreload``. The
    reloader's parent only watches files and restarts the child, so it must not load a model.
    Gunicorn workers start their engine in ``post_worker_init`` instead."""
    argv = sys.argv if argv is None else argv
    environ = dict(os.environ) if environ is None else environ
    if len(argv) < 2 or argv[1] != "runserver":
        return False
    return environ.get("RUN_MAIN") == "true" or "--noreload" in argv


class InferenceConfig(AppConfig):
    name = "inference"
    verbose_name = "Answers and safety"

    def ready(self) -> None:
        from inference import signals  # noqa: F401

        # The development server's serving process starts loading the model and building the
        # knowledge index now, so it is ready with the server rather than after the first
        # question. This only starts background threads: torch is imported there, and the
        # database is read there too.
        # Other commands (migrate, test, shell) never load anything here.
        if is_serving_process():
            from inference.pipeline import warm_up

            warm_up()

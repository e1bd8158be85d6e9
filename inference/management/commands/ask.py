import time

from django.core.management.base import BaseCommand, CommandError

from inference.engine import get_manager
from inference.pipeline import answer
from inference.text import clean_input


class Command(BaseCommand):
    help = "Answer one question through the full pipeline and print the answer, its source and timings."

    def add_arguments(self, parser) -> None:
        parser.add_argument("question")

    def handle(self, *args, question: str, **options) -> None:
        if not clean_input(question):
            raise CommandError("The question is empty.")
        started = time.monotonic()
        manager = get_manager()
        manager.start(wait=True)
        loaded = time.monotonic()
        result = answer(question)
        finished = time.monotonic()
        self.stdout.write(result.text)
        self.stdout.write("")
        for citation in result.citations:
            self.stdout.write(f"source: {citation['title']} ({citation['publisher']}) {citation['url']}".rstrip())
        self.stdout.write(result.disclaimer)
        self.stdout.write("")
        status = manager.status()
        self.stdout.write(
            f"source: {result.source}"
            + (f" · from: {result.matched_rule}" if result.matched_rule else "")
            + (f" · fallback: {result.fallback}" if result.fallback else "")
            + (f" · triage: {result.triage_level}" if result.triage_level != "routine" else "")
        )
        self.stdout.write(
            f"engine: {status['state']} · adapter: {result.adapter_version or '-'} · tokens: {result.tokens}"
        )
        rate = (
            f" ({result.tokens / (result.latency_ms / 1000):.1f} tok/s)" if result.tokens and result.latency_ms else ""
        )
        timing = f"load: {loaded - started:.2f} s · answer: {result.latency_ms / 1000:.2f} s{rate}"
        self.stdout.write(f"{timing} · total: {finished - started:.2f} s")

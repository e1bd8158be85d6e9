from django.apps import AppConfig


class KnowledgeConfig(AppConfig):
    name = "knowledge"
    verbose_name = "Knowledge base"

    def ready(self) -> None:
        # Signal handlers only: the search index is built lazily, per worker, on first use.
        from knowledge import signals  # noqa: F401

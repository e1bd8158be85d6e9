from django.apps import AppConfig


class InferenceConfig(AppConfig):
    name = "inference"
    verbose_name = "Answers and safety"

    def ready(self) -> None:
        # Signal handlers only: the model is never loaded here (it loads lazily, per worker).
        from inference import signals  # noqa: F401

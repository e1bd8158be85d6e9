from django.apps import AppConfig


class BenchConfig(AppConfig):
    """The evaluation harness as an app, for its ``evaluate`` command. It has no models; it is
    installed only where bench/ exists (a checkout: the production image leaves it out)."""

    name = "bench"
    verbose_name = "Benchmarks and evaluation"

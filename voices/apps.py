from django.apps import AppConfig


class VoicesConfig(AppConfig):
    name = "voices"
    verbose_name = "Known voices"

    def ready(self):
        from . import signals  # noqa: F401

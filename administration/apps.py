from django.apps import AppConfig


class AdministrationConfig(AppConfig):
    name = "administration"
    verbose_name = "Administration"

    def ready(self):
        from . import signals  # noqa: F401  (task failures for the status page)

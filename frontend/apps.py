from django.apps import AppConfig


class FrontendConfig(AppConfig):
    """Templates and vendored static assets. No code reaches outside this site for a page to work."""

    name = "frontend"

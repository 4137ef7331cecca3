from django.apps import AppConfig


class TranscriptionConfig(AppConfig):
    name = "transcription"
    verbose_name = "Transcription"

    def ready(self):
        from .live import signout

        signout.connect_signals()  # live sockets close when their user signs out or is deactivated

"""Serve live caption streams from this process's speech engine, through the channel layer."""
import asyncio
import logging

from channels.layers import get_channel_layer
from django.core.management.base import BaseCommand

from transcription import engine_host
from transcription.live.worker import CaptionWorker

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Run a caption worker: load the speech engine and caption live meetings sent to it over Redis."

    def add_arguments(self, parser):
        parser.add_argument("--no-preload", action="store_true", help="Load the model on the first stream instead of at start.")

    def handle(self, *args, no_preload=False, **options):
        if not no_preload:
            try:
                engine = engine_host.get_engine()
            except engine_host.EngineUnavailable as exc:
                # Served anyway: a host is then told in words why there are no captions (not that no worker
                # answered), and the model an administrator activates later is loaded for the next meeting.
                self.stderr.write(f"No speech engine yet: {exc} Serving anyway; each new meeting tries again.")
            else:
                self.stdout.write(f"Speech engine loaded: {engine.capacity} streams on {engine.device}.")
        try:
            asyncio.run(CaptionWorker(get_channel_layer()).serve())
        except KeyboardInterrupt:
            pass

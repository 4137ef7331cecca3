"""The process's speech engine: one per process, loaded on first use from the active model folder.

Live captions (the host consumer or a caption worker) and reprocessing (a Celery GPU worker) both ask
`get_engine()`. Loading takes seconds to minutes: call it off the event loop. A failed load is
remembered for `RETRY_AFTER_S`, so a broken install does not retry on every request, yet an
administrator's fix is picked up without a restart.
"""
import logging
import threading
import time

from django.conf import settings

log = logging.getLogger(__name__)
RETRY_AFTER_S = 30

NO_MODEL = (
    "No speech model is configured on this server. An administrator can import one "
    "(manage.py import_model) or set SCRIBE_ASR_MODEL_DIR to a model folder."
)


class EngineUnavailable(Exception):
    """No engine can run in this process; the message is written for the person who asked."""


_lock = threading.Lock()
_engine = None
_engine_dir: str | None = None
_failure: tuple[float, str] | None = None  # (when, message) of the last failed load


def active_asr_dir() -> str:
    """The folder of the speech model to serve."""
    return settings.ASR_MODEL_DIR


def engine_options():
    from transcription.engine import EngineOptions

    return EngineOptions(
        device=settings.ASR_DEVICE or None,
        max_streams=settings.ASR_MAX_STREAMS,
        offline_segment_s=settings.ASR_OFFLINE_SEGMENT_S,
        text_window=settings.ASR_TEXT_WINDOW or None,
    )


def get_engine():
    """The loaded engine for the active model; raises EngineUnavailable with a readable message."""
    global _engine, _engine_dir, _failure
    model_dir = active_asr_dir()
    if not model_dir:
        raise EngineUnavailable(NO_MODEL)
    with _lock:
        if _engine is not None and _engine_dir == model_dir:
            return _engine
        if _failure and time.monotonic() - _failure[0] < RETRY_AFTER_S:
            raise EngineUnavailable(_failure[1])
        from transcription.engine import Engine

        try:
            engine = Engine.load(model_dir, engine_options())
        except Exception as exc:  # the engine's own errors and a broken install both end here
            log.exception("speech engine failed to load from %s", model_dir)
            _failure = (time.monotonic(), f"The speech model could not be loaded: {exc}")
            raise EngineUnavailable(_failure[1]) from exc
        _engine, _engine_dir, _failure = engine, model_dir, None
        return engine


def loaded_engine():
    """The engine if this process has loaded one (for status pages), without loading it."""
    return _engine


def reset() -> None:
    """Shut the engine down and forget it (tests, and before loading a different model)."""
    global _engine, _engine_dir, _failure
    with _lock:
        if _engine is not None:
            _engine.shutdown()
        _engine, _engine_dir, _failure = None, None, None


def preload_in_background() -> None:
    """Start loading the engine now, in a thread, so that the first live session does not wait for it.

    A failure is logged by get_engine() and told to the host in words when a session starts.
    """
    if not active_asr_dir():
        return

    def load():
        try:
            get_engine()
        except EngineUnavailable:
            pass

    threading.Thread(target=load, name="speech-engine-preload", daemon=True).start()

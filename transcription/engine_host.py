"""The process's speech engine: one per process, loaded on first use from the active model folder.

Live captions (the host consumer or a caption worker) and reprocessing (a Celery GPU worker) both ask
`get_engine()`. Loading takes seconds to minutes: call it off the event loop. A failed load is
remembered for `RETRY_AFTER_S`, so a broken install does not retry on every request, yet an
administrator's fix is picked up without a restart.

The model to serve is the active ASR model version in the registry, else SCRIBE_ASR_MODEL_DIR.
Once an engine is loaded, a monitor thread looks at the registry every `ACTIVE_RECHECK_S`. When an
administrator activates another version, the monitor loads it beside the old engine (which keeps
serving meanwhile); then new streams get the new engine, running streams finish on the old one, and
the old one is shut down once it has had no stream for `RETIRE_IDLE_S`. If the new version fails to
load or does not match its checksums, the old engine keeps serving and the failure is reported. On a
GPU whose stream pool leaves no room for a second model, the new version waits until no stream runs,
then replaces the old engine (streams asking during that load wait for it).
The monitor also publishes this process's engine health to Redis for the status page and /healthz.
"""
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

log = logging.getLogger(__name__)
RETRY_AFTER_S = 30
# While an engine serves, a new version that failed is tried again this rarely: each try reads and
# checks every file and may fill GPU memory, and the usual fix (copy, verify, activate) takes longer.
SWAP_RETRY_AFTER_S = 300
ACTIVE_RECHECK_S = 5.0  # how stale the registry's answer may be
RETIRE_IDLE_S = 2.0  # a replaced engine with no stream for this long is shut down
MONITOR_EVERY_S = 1.0
PUBLISH_EVERY_S = 2.0
HOST_ID = f"{socket.gethostname()}:{os.getpid()}"

NO_MODEL = (
    "No speech model is configured on this server. An administrator can import one "
    "(manage.py import_model) or set SCRIBE_ASR_MODEL_DIR to a model folder."
)


class EngineUnavailable(Exception):
    """No engine can run in this process; the message is written for the person who asked."""


@dataclass(frozen=True)
class ModelChoice:
    """The model this process should serve: a registered version (with its checksums) or the settings' folder."""

    path: str
    name: str
    files: dict | None = None  # the registry's checksums, checked before loading; None for the settings' folder
    verified_at: str = ""  # a new verification is a new chance for a version that failed to load

    @property
    def key(self) -> tuple[str, str]:
        return (self.path, self.verified_at)


_lock = threading.Lock()  # guards the module state below; never held while loading
_load_lock = threading.Lock()  # one load at a time
_engine = None
_engine_choice: ModelChoice | None = None
_retiring: list = []  # [engine, idle_since or None], replaced engines still finishing streams
_failure: tuple[float, tuple, str] | None = None  # (when, choice key, message) of the last failed load
_waiting: ModelChoice | None = None  # a new version too big to load beside the serving engine
_choice_cache: tuple[float, ModelChoice] | None = None
_monitor: threading.Thread | None = None
_monitor_stop = threading.Event()


def _registry_choice() -> ModelChoice:
    from administration.registry import active_model

    version = active_model("asr")
    if version is not None:
        return ModelChoice(path=version.path, name=version.name, files=version.files, verified_at=str(version.verified_at))
    return ModelChoice(path=settings.ASR_MODEL_DIR, name=Path(settings.ASR_MODEL_DIR).name)


def speech_model_ready() -> bool:
    """Whether a speech model is chosen (active in the registry, or set in the environment) and its folder
    is there: without one, live captions cannot start and recordings cannot be transcribed."""
    path = _registry_choice().path
    return bool(path) and os.path.isfile(os.path.join(path, "config.json"))


def model_choice(max_age_s: float | None = None) -> ModelChoice:
    """The model to serve, read from the registry at most every `max_age_s` (default ACTIVE_RECHECK_S) seconds."""
    global _choice_cache
    max_age_s = ACTIVE_RECHECK_S if max_age_s is None else max_age_s
    cached = _choice_cache
    if cached is not None and time.monotonic() - cached[0] < max_age_s:
        return cached[1]
    try:
        choice = _registry_choice()
    except Exception:  # database unreachable: keep serving what was chosen last
        if cached is None:
            raise
        log.warning("model registry unreachable; keeping %s", cached[1].name, exc_info=True)
        choice = cached[1]
    _choice_cache = (time.monotonic(), choice)
    return choice


def active_asr_dir() -> str:
    """The folder of the speech model to serve."""
    return model_choice().path


def engine_options():
    from administration.models import SiteSettings
    from transcription.engine import EngineOptions

    return EngineOptions(
        device=settings.ASR_DEVICE or None,
        max_streams=min(settings.ASR_MAX_STREAMS, SiteSettings.load().max_live_streams),
        offline_segment_s=settings.ASR_OFFLINE_SEGMENT_S,
        offline_batch=settings.ASR_OFFLINE_BATCH,
        text_window=settings.ASR_TEXT_WINDOW or None,
        step_budget_ms=settings.ASR_STEP_BUDGET_MS or None,
        kv_cache=settings.ASR_KV_CACHE or None,
    )


def _check_files(choice: ModelChoice) -> None:
    """Compare the folder with the checksums taken at import, so a file changed since is never loaded."""
    from administration import weights

    if not settings.ASR_VERIFY_ON_LOAD:
        return
    if choice.files is not None:
        expected = {name: weights.FileEntry(**entry) for name, entry in choice.files.items()}
    else:  # the settings' folder: check it against its own manifest, if it has one
        expected = weights.read_manifest(Path(choice.path))
        if expected is None:
            return
    problems = weights.compare(expected, weights.fingerprint(Path(choice.path)))
    if problems:
        raise weights.WeightsError(f"The model folder of {choice.name} no longer matches its import: " + "; ".join(problems) + ".")


def _load(choice: ModelChoice):
    """Load `choice`, or remember the failure and raise EngineUnavailable."""
    global _failure
    from transcription.engine import Engine

    try:
        _check_files(choice)
        engine = Engine.load(choice.path, engine_options())
    except Exception as exc:  # the engine's own errors, a bad folder and a broken install all end here
        log.exception("speech engine failed to load from %s", choice.path)
        message = f"The speech model {choice.name} could not be loaded: {exc}"
        with _lock:
            _failure = (time.monotonic(), choice.key, message)
        raise EngineUnavailable(message) from exc
    log.info("speech engine loaded: %s on %s, %s streams", choice.name, engine.device, engine.capacity)
    return engine


def _recently_failed(choice: ModelChoice, within_s: float | None = None) -> str | None:
    failure, within_s = _failure, RETRY_AFTER_S if within_s is None else within_s
    if failure and failure[1] == choice.key and time.monotonic() - failure[0] < within_s:
        return failure[2]
    return None


def get_engine():
    """The loaded engine for the active model; raises EngineUnavailable with a readable message.

    While a newly activated model loads in the background, the engine already loaded is returned.
    """
    global _engine, _engine_choice, _failure
    if _engine is not None:
        return _engine
    try:
        choice = model_choice(max_age_s=0)  # about to load: worth a fresh look at the registry
    except Exception as exc:
        log.warning("the model registry cannot be read: %r", exc)
        raise EngineUnavailable("The model registry cannot be read; try again shortly.") from exc
    if not choice.path:
        raise EngineUnavailable(NO_MODEL)
    with _load_lock:
        if _engine is not None:
            return _engine
        _start_monitor()
        if message := _recently_failed(choice):
            raise EngineUnavailable(message)
        engine = _load(choice)
        with _lock:
            _engine, _engine_choice, _failure = engine, choice, None
        return engine


def refresh() -> None:
    """Follow the registry: load a newly activated model and swap it in, shut idle replaced engines down.

    The monitor thread calls this every second; tests call it to avoid waiting.
    """
    global _engine, _engine_choice, _failure, _waiting
    _shut_down_idle()
    if _engine is None:
        return  # nothing loaded yet: the next get_engine() loads the active model
    choice = model_choice()
    if not choice.path or choice.path == _engine_choice.path:
        _waiting = None  # rolled back before a waiting version got its turn
        return
    if _waiting is not None and _waiting.path == choice.path:
        return _swap_when_idle(choice)
    if _recently_failed(choice, SWAP_RETRY_AFTER_S):
        return
    with _load_lock:
        if _engine is None or choice.path == _engine_choice.path:
            return
        try:
            engine = _load(choice)
        except EngineUnavailable as exc:
            if _no_room(exc.__cause__ or exc):
                with _lock:
                    _waiting, _failure = choice, None
                log.info("%s does not fit beside the serving engine; it loads once no stream runs", choice.name)
            return  # otherwise the old engine keeps serving; the failure is published
        if engine.capacity < _engine.capacity:
            # Sized beside the old engine, the new pool got less GPU memory than the old one has; kept,
            # it would serve fewer meetings until the next restart. Load it again once nothing runs.
            log.info("%s got %s stream slots beside the serving engine's %s; it loads once no stream runs",
                     choice.name, engine.capacity, _engine.capacity)
            engine.shutdown()
            with _lock:
                _waiting = choice
            return
        with _lock:
            old, _engine, _engine_choice, _failure = _engine, engine, choice, None
            _retiring.append([old, None])
        log.info("speech engine swapped to %s; the previous one finishes its streams", choice.name)


def _no_room(exc: BaseException) -> bool:
    # A GPU whose stream pool fills its memory cannot hold a second model; the engine says so in words,
    # and a failed weight copy surfaces as CUDA's out-of-memory error.
    text = str(exc).lower()
    return "not enough free gpu memory" in text or "out of memory" in text


def _swap_when_idle(choice: ModelChoice) -> None:
    """Both models do not fit: once no stream runs, stop the old engine, then load the new one.

    Streams asking meanwhile wait for the load in get_engine(). If the new model fails, the old one is
    loaded again so that captions go on; the failure is published.
    """
    global _engine, _engine_choice, _waiting
    with _load_lock:
        with _lock:
            if _engine is None or _retiring or _engine.health()["active_streams"] > 0:
                return
            old, old_choice, _engine = _engine, _engine_choice, None
        old.shutdown()
        try:
            engine = _load(choice)
        except EngineUnavailable:
            choice = old_choice
            try:
                engine = _load(old_choice)
            except EngineUnavailable:
                engine, choice = None, None
        with _lock:
            _engine, _engine_choice, _waiting = engine, choice, None
        log.info("speech engine swapped while idle; now serving %s", choice.name if choice else "nothing")


def _shut_down_idle() -> None:
    now = time.monotonic()
    done = []
    with _lock:
        for entry in _retiring:
            engine, idle_since = entry
            if engine.health()["active_streams"] > 0:
                entry[1] = None
            elif idle_since is None:
                entry[1] = now
            elif now - idle_since >= RETIRE_IDLE_S:
                done.append(entry)
        for entry in done:
            _retiring.remove(entry)
    for engine, _ in done:
        engine.shutdown()  # blocks until its thread ends; outside the lock
        log.info("replaced speech engine shut down")


def _engine_figures(engine) -> dict:
    info = engine.health()
    figures = {
        "alive": info["alive"], "device": str(engine.device), "active_streams": info["active_streams"],
        "capacity": info["capacity"], "step_ms_p50": info["step_ms_p50"], "step_ms_p95": info["step_ms_p95"],
        # What limits `capacity`: the streams that fit in memory, and those whose step fits the time budget.
        "capacity_memory": info.get("capacity_memory"), "capacity_time": info.get("capacity_time"),
        "step_budget_ms": info.get("step_budget_ms"),
        "last_step_at": info["last_step_at"],
        "streams": [{"id": sid, **s} for sid, s in info["streams"].items()],
    }
    if engine.device.type == "cuda":
        import torch

        free, total = torch.cuda.mem_get_info(engine.device)
        figures.update(gpu_free_bytes=free, gpu_used_bytes=total - free, gpu_total_bytes=total)
    return figures


def host_health() -> dict:
    """This process's engines as the status page shows them; `serving` is False when nothing can caption."""
    with _lock:
        engine, choice, failure, retiring = _engine, _engine_choice, _failure, [e for e, _ in _retiring]
        waiting = _waiting
    report = {"host": HOST_ID, "at": time.time(), "model": choice.name if choice else None, "failure": failure[2] if failure else None,
              "waiting_for": waiting.name if waiting else None}
    if engine is not None:
        report.update(_engine_figures(engine))
    report["serving"] = bool(engine is not None and report["alive"]) or (engine is None and failure is None)
    report["retiring"] = [{"active_streams": e.health()["active_streams"]} for e in retiring]
    # Streams still finishing on a replaced engine count as load on this host.
    report["active_streams"] = report.get("active_streams", 0) + sum(r["active_streams"] for r in report["retiring"])
    return report


def publish_health() -> None:
    from config.status_store import publish_engine

    publish_engine(HOST_ID, host_health())


def _monitor_loop() -> None:
    last_publish = 0.0
    from django.db import close_old_connections

    while not _monitor_stop.wait(MONITOR_EVERY_S):
        try:
            close_old_connections()  # this thread serves no requests, so nothing else drops a broken connection
            refresh()
            if time.monotonic() - last_publish >= PUBLISH_EVERY_S:
                publish_health()
                last_publish = time.monotonic()
        except Exception:  # the monitor must outlive a database or Redis outage
            log.warning("speech engine monitor: %s", "refresh or publish failed", exc_info=True)


def _start_monitor() -> None:
    global _monitor
    if _monitor is None or not _monitor.is_alive():
        _monitor_stop.clear()
        _monitor = threading.Thread(target=_monitor_loop, name="asr-engine-monitor", daemon=True)
        _monitor.start()


def loaded_engine():
    """The engine if this process has loaded one (for status pages), without loading it."""
    return _engine


def reset() -> None:
    """Shut every engine down and forget them (tests, and before loading a different model)."""
    global _engine, _engine_choice, _failure, _choice_cache, _monitor, _waiting
    _monitor_stop.set()
    if _monitor is not None:
        _monitor.join()
    with _load_lock, _lock:
        engines = [e for e in [_engine, *(e for e, _ in _retiring)] if e is not None]
        _engine, _engine_choice, _failure, _choice_cache, _monitor, _waiting = None, None, None, None, None, None
        _retiring.clear()
    for engine in engines:
        engine.shutdown()


def preload_in_background() -> None:
    """Start loading the engine now, in a thread, so that the first live session does not wait for it.

    A failure is logged by get_engine() and told to the host in words when a session starts. The
    registry is read inside the thread, so that a database still starting cannot stop the server.
    """

    def load():
        try:
            get_engine()
        except EngineUnavailable:
            pass

    threading.Thread(target=load, name="speech-engine-preload", daemon=True).start()

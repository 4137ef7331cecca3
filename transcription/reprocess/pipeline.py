"""Reprocessing jobs: the stages as functions over a job row, and queueing the chain of tasks.

Every stage reads its input from and writes its output to the job's folder in the shared media store
(written under a temporary name, then renamed), so a stage that a crashed worker left half done simply
runs again when Celery redelivers it (acks_late), and a finished stage is never repeated. Only the last
stage writes to the database, replacing the meeting's transcript in one transaction.
"""
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from celery import chain, chord, signature
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import OperationalError, transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from meetings.audit import audit
from meetings.models import AuditEvent, Meeting, Recording, ReprocessJob
from meetings.segments import rules_from_settings

from . import decode, hooks
from .align import TimedWord, Turn, align, read_rttm, write_rttm

log = logging.getLogger(__name__)
Stage = ReprocessJob.Stage

# Share of the progress bar per stage. Transcription and speaker separation run side by side and share
# theirs: the bar shows the mean of both, each read from the other's progress file in the job folder.
_SPAN = {Stage.DECODING: (0, 10), Stage.TRANSCRIBING: (10, 95), Stage.DIARIZING: (10, 95), Stage.STORING: (95, 100)}
# Separating speakers again decodes, separates and stores only, one stage after the other.
_SPEAKERS_SPAN = {Stage.DECODING: (0, 15), Stage.DIARIZING: (15, 95), Stage.STORING: (95, 100)}
_TIMING_KEY = {Stage.DECODING: "decode", Stage.TRANSCRIBING: "transcribe", Stage.DIARIZING: "diarize", Stage.STORING: "store"}
PCM_FILE, WORDS_FILE, TURNS_FILE, VOICES_FILE = "audio.pcm", "words.json", "speakers.rttm", "voices.json"
SIDE_BY_SIDE = {Stage.TRANSCRIBING: (Stage.DIARIZING, TURNS_FILE), Stage.DIARIZING: (Stage.TRANSCRIBING, WORDS_FILE)}


class JobCancelled(Exception):
    """Someone pressed Cancel; the running stage stops at its next progress report."""


class JobFailed(Exception):
    """A stage cannot go on; the message is shown to users on the meeting page."""


# ---- queueing -------------------------------------------------------------------------------------

def _stage_task(name: str, job_id: int):
    # By name, as the routes in settings name them: the task module imports this one, never the reverse.
    return signature(f"transcription.tasks.{name}", args=(job_id,), immutable=True)


def reprocess_chain(job_id: int):
    """Decode; then transcription and speaker separation side by side; then store, once both have finished."""
    side_by_side = chord([_stage_task("reprocess_transcribe", job_id), _stage_task("reprocess_diarize", job_id)],
                         _stage_task("reprocess_store", job_id))
    return chain(_stage_task("reprocess_decode", job_id), side_by_side)


def speakers_chain(job_id: int):
    """Speaker separation again over the stored words: decode, separate, store; no transcription."""
    return chain(*(_stage_task(name, job_id) for name in ("reprocess_decode", "reprocess_diarize", "speakers_store")))


def reprocess_queue(*, meeting: Meeting, recording: Recording, by=None, request=None,
                    kind: str = ReprocessJob.Kind.TRANSCRIPT, speaker_counts: dict | None = None) -> ReprocessJob:
    """Create a job for `recording` and start its tasks once the transaction commits.

    A meeting has at most one unfinished job: an earlier one still running is cancelled, since its
    result would be replaced anyway. `kind` SPEAKERS separates speakers again over the stored words
    (transcription/reprocess/speakers.py).
    """
    with transaction.atomic():
        Meeting.objects.select_for_update().filter(pk=meeting.pk).first()
        reprocess_cancel_unfinished(meeting_id=meeting.pk)
        job = ReprocessJob.objects.create(meeting=meeting, recording=recording, created_by=by, delay_ms=settings.ASR_REPROCESS_DELAY_MS,
                                          kind=kind, speaker_counts=speaker_counts or {})
        Meeting.objects.filter(pk=meeting.pk).update(status=Meeting.Status.PROCESSING)
        stages = speakers_chain if kind == ReprocessJob.Kind.SPEAKERS else reprocess_chain
        transaction.on_commit(lambda: stages(job.pk).apply_async())
    return job


def reprocess_cancel_unfinished(*, meeting_id: int) -> None:
    """Cancel the meeting's unfinished jobs: their result would be replaced (a new job, or a live
    session that resumed after its host came back late, with more audio to come)."""
    earlier = ReprocessJob.objects.filter(meeting_id=meeting_id).exclude(stage__in=ReprocessJob.FINISHED)
    earlier.filter(stage=Stage.QUEUED).update(cancel_requested=True, stage=Stage.CANCELLED, finished_at=timezone.now())
    earlier.update(cancel_requested=True)  # running ones stop at their next progress report


def reprocess_room_check(*, by, meeting: Meeting) -> None:
    """Raise ValidationError when `by` already has settings.REPROCESS_MAX_QUEUED_PER_USER recordings waiting
    or being transcribed (a job of this meeting does not count: a new one replaces it)."""
    if by is None:
        return
    limit = settings.REPROCESS_MAX_QUEUED_PER_USER
    waiting = (ReprocessJob.objects.filter(created_by=by, cancel_requested=False).exclude(stage__in=ReprocessJob.FINISHED)
               .exclude(meeting=meeting).count())
    if waiting >= limit:
        raise ValidationError(f"You already have {waiting} recordings waiting to be transcribed, the most this site allows "
                              "at once. Try again when one has finished, or cancel one.")


def queue_reprocessing(meeting: Meeting) -> ReprocessJob | None:
    """The live session ended: transcribe its recording again at the reprocessing delay."""
    recording = meeting.recordings.filter(source=Recording.Source.LIVE).order_by("-created_at").first()
    if recording is None or not recording.file:
        Meeting.objects.filter(pk=meeting.pk).update(status=Meeting.Status.READY)
        return None
    return reprocess_queue(meeting=meeting, recording=recording)


def reprocess_cancel(*, job: ReprocessJob, by, request=None) -> ReprocessJob:
    """Ask the job to stop; a job no worker has started yet stops at once."""
    with transaction.atomic():
        job = ReprocessJob.objects.select_for_update().get(pk=job.pk)
        if job.is_finished:
            return job
        job.cancel_requested = True
        fields = ["cancel_requested", "updated_at"]
        if job.stage == Stage.QUEUED:
            job.stage, job.finished_at = Stage.CANCELLED, timezone.now()
            fields += ["stage", "finished_at"]
            _meeting_settled(job.meeting_id)
        job.save(update_fields=fields)
        audit(request, AuditEvent.Action.REPROCESS_CANCEL, user=by, obj=job, meeting_id=job.meeting_id)
    return job


def _meeting_settled(meeting_id: int, status: str = Meeting.Status.READY) -> None:
    """Leave `processing` unless a newer job of the meeting is still under way."""
    if ReprocessJob.objects.filter(meeting_id=meeting_id, cancel_requested=False).exclude(stage__in=ReprocessJob.FINISHED).exists():
        return
    Meeting.objects.filter(pk=meeting_id, status=Meeting.Status.PROCESSING).update(status=status)


# ---- running a stage ------------------------------------------------------------------------------

def work_path(job: ReprocessJob, name: str) -> Path:
    folder = Path(settings.MEDIA_ROOT) / job.work_dir
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def run_stage(job_id: int, stage: str, body: Callable[[ReprocessJob, Callable[[float], None]], None]) -> None:
    """Run one stage of a job unless it is finished or cancelled; record failures on the job."""
    job = ReprocessJob.objects.filter(pk=job_id).first()
    if job is None or job.is_finished:
        return
    if job.cancel_requested:
        return _finish(job, Stage.CANCELLED)
    _stage_started(job, stage)
    started = time.monotonic()
    try:
        body(job, _reporter(job, stage))
    except JobCancelled:
        return _finish(job, Stage.CANCELLED)
    except OperationalError:
        raise  # the database went away: the task's autoretry runs the stage again
    except (JobFailed, decode.RecordingUnreadable) as exc:
        return _finish(job, Stage.FAILED, error=str(exc))
    except Exception:
        if _fresh(job_id).cancel_requested:  # the stage beside it cancelled and removed the job's files
            return _finish(job, Stage.CANCELLED)
        log.exception("reprocessing job %s failed in %s", job_id, stage)
        _finish(job, Stage.FAILED, error=f"Reprocessing stopped with an internal error at the stage “{Stage(stage).label}”. "
                                         f"Try again; if it fails again, an administrator can find the details of job {job_id} in the worker log.")
        raise
    key = _TIMING_KEY[stage]
    with transaction.atomic():  # the stage beside it may record its time at the same moment
        timings = ReprocessJob.objects.select_for_update().get(pk=job_id).timings
        ReprocessJob.objects.filter(pk=job_id).update(timings={**timings, key: round(time.monotonic() - started, 3)})
    if _side_by_side(job, stage) and not work_path(job, SIDE_BY_SIDE[stage][1]).exists():
        ReprocessJob.objects.filter(pk=job_id, stage=stage).update(stage=SIDE_BY_SIDE[stage][0])  # show what is still running


def _stage_started(job: ReprocessJob, stage: str) -> None:
    """Name the stage on the job; of two side by side, the first to start names it, and the bar never moves back."""
    rows = ReprocessJob.objects.filter(pk=job.pk)
    if _side_by_side(job, stage):
        rows.exclude(stage__in=SIDE_BY_SIDE).update(stage=stage, updated_at=timezone.now())
    else:
        rows.update(stage=stage, updated_at=timezone.now())
    rows.update(percent=Greatest(F("percent"), _span(job, stage)[0]))


def _span(job: ReprocessJob, stage: str) -> tuple[int, int]:
    return (_SPEAKERS_SPAN if job.kind == ReprocessJob.Kind.SPEAKERS else _SPAN)[stage]


def _side_by_side(job: ReprocessJob, stage: str) -> bool:
    """Whether `stage` runs beside another: in a full reprocessing, not when separating speakers again."""
    return stage in SIDE_BY_SIDE and job.kind != ReprocessJob.Kind.SPEAKERS


def _reporter(job: ReprocessJob, stage: str) -> Callable[[float], None]:
    lo, hi = _span(job, stage)
    last = [0.0]

    def report(fraction: float) -> None:
        now = time.monotonic()
        if now - last[0] < 1.0 and fraction < 1.0:  # at most one write a second
            return
        last[0] = now
        share = min(max(fraction, 0.0), 1.0)
        if _side_by_side(job, stage):
            share = (share + _progress_beside(job, stage, share)) / 2
        updated = ReprocessJob.objects.filter(pk=job.pk, cancel_requested=False).update(
            percent=Greatest(F("percent"), lo + round((hi - lo) * share)), updated_at=timezone.now()
        )
        if not updated:
            raise JobCancelled()

    return report


def _progress_beside(job: ReprocessJob, stage: str, own: float) -> float:
    """Record this stage's progress in the job folder; return the other side-by-side stage's (1.0 once done)."""
    other, output = SIDE_BY_SIDE[stage]
    _write_atomic(work_path(job, f"progress-{_TIMING_KEY[stage]}"), f"{own:.4f}")
    if work_path(job, output).exists():
        return 1.0
    try:
        return float(work_path(job, f"progress-{_TIMING_KEY[other]}").read_text())
    except (OSError, ValueError):
        return 0.0  # not started yet, or written at this moment


def _fresh(job_id: int) -> ReprocessJob:
    return ReprocessJob.objects.get(pk=job_id)


def _set(job: ReprocessJob, **fields) -> None:
    for name, value in fields.items():
        setattr(job, name, value)
    ReprocessJob.objects.filter(pk=job.pk).update(updated_at=timezone.now(), **fields)


def _finish(job: ReprocessJob, stage: str, error: str = "") -> None:
    with transaction.atomic():
        _set(job, stage=stage, error=error, finished_at=timezone.now(), **({"percent": 100} if stage == Stage.DONE else {}))
        _meeting_settled(job.meeting_id, Meeting.Status.FAILED if stage == Stage.FAILED else Meeting.Status.READY)
    if stage != Stage.FAILED:
        _remove_work_files(job)


def _remove_work_files(job: ReprocessJob) -> None:
    folder = Path(settings.MEDIA_ROOT) / job.work_dir
    for name in (PCM_FILE, WORDS_FILE, TURNS_FILE, VOICES_FILE, *(f"progress-{_TIMING_KEY[st]}" for st in SIDE_BY_SIDE)):
        (folder / name).unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:
        pass


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# ---- the stages -----------------------------------------------------------------------------------

def stage_decode(job: ReprocessJob, progress: Callable[[float], None]) -> None:
    out = work_path(job, PCM_FILE)
    if not out.exists():
        samples = decode.decode_to_pcm(job.recording.file.path, str(out), on_progress=progress,
                                       max_samples=settings.RECORDING_MAX_HOURS * 3600 * decode.SAMPLE_RATE)
        Recording.objects.filter(pk=job.recording_id).update(duration_ms=samples * 1000 // decode.SAMPLE_RATE)


def stage_transcribe(job: ReprocessJob, progress: Callable[[float], None]) -> None:
    from transcription.engine_host import EngineUnavailable, active_asr_dir, get_engine

    from .transcribe import asr_version, transcribe_pcm

    out = work_path(job, WORDS_FILE)
    if out.exists():
        return
    try:
        engine = get_engine()
    except EngineUnavailable as exc:
        raise JobFailed(str(exc)) from None
    pcm = decode.open_pcm(str(work_path(job, PCM_FILE)))
    words = transcribe_pcm(engine, pcm, job.delay_ms, on_progress=progress)
    _write_atomic(out, json.dumps([[w.text, w.start_ms, w.end_ms] for w in words]))
    _set(job, asr_version=asr_version(active_asr_dir(), job.delay_ms))


def stage_diarize(job: ReprocessJob, progress: Callable[[float], None]) -> None:
    from . import diarize

    out = work_path(job, TURNS_FILE)
    if out.exists():
        return
    model_dir = settings.DIARIZATION_DIR
    if not diarize.is_installed(model_dir):
        _write_atomic(out, "")
        _set(job, diarization_version="")
        return
    pipelines = diarize.load_pipelines(model_dir, settings.DIARIZATION_DEVICE or None, settings.DIARIZATION_BATCH_SIZE,
                                       copies=settings.DIARIZATION_PARALLEL_CHUNKS)
    pcm = decode.open_pcm(str(work_path(job, PCM_FILE)))
    chunk_s = diarize.chunk_seconds(len(pcm) / decode.SAMPLE_RATE, settings.DIARIZATION_CHUNK_S, len(pipelines))
    turns = diarize.diarize_pcm(pipelines, pcm, chunk_s=chunk_s, on_progress=progress, counts=job.speaker_counts)
    version = diarize.pipeline_version(model_dir)
    # Before the turns are written, so that a stage run again after a crash sends it again too.
    hooks.speakers_separated.send(sender=ReprocessJob, meeting=job.meeting, pipeline=pipelines[0], pcm=pcm, turns=turns,
                                  pipeline_version=version, path=work_path(job, VOICES_FILE))
    _write_atomic(out, write_rttm(turns))
    _set(job, diarization_version=version)


def speakers_stored(job: ReprocessJob) -> None:
    """Tell other apps (known voices) that the meeting's speakers are stored; the transcript is already
    saved, so a receiver's failure is only logged."""
    results = hooks.speakers_stored.send_robust(sender=ReprocessJob, meeting=job.meeting, path=work_path(job, VOICES_FILE),
                                                pipeline_version=_fresh(job.pk).diarization_version)
    for receiver, result in results:
        if isinstance(result, Exception):
            log.error("after storing the speakers of meeting %s, %s failed", job.meeting_id, receiver.__qualname__, exc_info=result)


def stage_store(job: ReprocessJob, progress: Callable[[float], None]) -> None:
    from .store import transcript_replace

    words = [TimedWord(t, s, e) for t, s, e in json.loads(work_path(job, WORDS_FILE).read_text(encoding="utf-8"))]
    turns: list[Turn] = read_rttm(work_path(job, TURNS_FILE).read_text(encoding="utf-8"))
    segments = align(words, turns, rules_from_settings())
    progress(0.5)
    transcript_replace(job=job, segments=segments)  # marks the job done in the same transaction
    if _fresh(job.pk).stage != Stage.DONE:
        raise JobCancelled()
    speakers_stored(job)
    _remove_work_files(job)

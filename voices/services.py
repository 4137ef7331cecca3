"""Enrolling, building, unlinking and deleting known voices. Views and tasks call these and nothing lower.

Privacy choices (see also models.py): a voice is enrolled only with consent recorded by name (a user
enrolling themselves confirms their own); it is built from one meeting's clean speech and kept with that
meeting; it is offered only where the meeting owner can see that source meeting; its holder and whoever
enrolled it can see and delete it, administrators can list and purge all; unused ones go after the
retention period; every enrolment, recognition, undo and deletion is audited.
"""
import logging
import tempfile
from datetime import timedelta
from pathlib import Path

from celery import signature
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from meetings.audit import audit
from meetings.models import AuditEvent, Recording, ReprocessJob, Segment, Speaker

from .models import Person, SpeakerIdentity, Voiceprint, user_display_name

log = logging.getLogger(__name__)


def speaker_clean_spans(*, speaker: Speaker) -> list[tuple[int, int]]:
    """The stretches (ms) where only this speaker talks, from the stored transcript."""
    from transcription.reprocess.voiceprint import clean_spans

    rows = Segment.objects.filter(meeting_id=speaker.meeting_id).values_list("speaker_id", "start_ms", "end_ms")
    mine = [(s, e) for who, s, e in rows if who == speaker.pk]
    others = [(s, e) for who, s, e in rows if who != speaker.pk]  # unattributed text counts as someone else
    return clean_spans(mine, others)


def _source_recording(meeting) -> Recording | None:
    """The recording the stored transcript was made from: the last finished job's, else the newest."""
    job = ReprocessJob.objects.filter(meeting=meeting, stage=ReprocessJob.Stage.DONE).select_related("recording").first()
    recording = job.recording if job else meeting.recordings.order_by("-created_at").first()
    return recording if recording is not None and recording.file else None


def _holder(*, user=None, person_name: str = "", by) -> tuple[dict, str]:
    if user is not None:
        return {"user": user}, user_display_name(user)
    name = " ".join(person_name.split())[:100]
    if not name:
        raise ValidationError("Enter the name of the person whose voice this is.")
    person = Person.objects.filter(name__iexact=name).first() or Person.objects.create(name=name, created_by=by)
    return {"person": person}, person.name


def voiceprint_enrol(*, speaker: Speaker, by, consent: bool, user=None, person_name: str = "", request=None) -> Voiceprint:
    """Link `speaker` to a person and remember their voice; the embedding is built by a GPU task.

    `user` (a site user, possibly `by` themselves) or `person_name` (a person record, found or created)
    names the holder. Refused without consent, without a recording, or with too little clean speech."""
    from transcription.reprocess.diarize import is_installed
    from transcription.reprocess.voiceprint import speech_ms

    holder, name = _holder(user=user, person_name=person_name, by=by)
    if not consent:
        who = "you agree" if user is not None and user.pk == by.pk else f"{name} agreed"
        raise ValidationError(f"Tick the box to confirm that {who} to have the voice remembered.")
    if not is_installed(settings.DIARIZATION_DIR):
        raise ValidationError("Speaker separation is not installed, so voices cannot be remembered.")
    recording = _source_recording(speaker.meeting)
    if recording is None:
        raise ValidationError("This meeting has no recording, so there is no voice to remember.")
    spans = speaker_clean_spans(speaker=speaker)
    needed, found = settings.VOICEPRINT_MIN_SPEECH_S, speech_ms(spans) / 1000
    if found < needed:
        raise ValidationError(f"{speaker.label} speaks alone for only {found:.0f} s in this meeting; at least {needed} s are needed "
                              "to remember a voice. Choose a meeting where they speak more.")
    now = timezone.now()
    with transaction.atomic():
        voiceprint = Voiceprint.objects.create(
            **holder, holder_name=name, source_meeting=speaker.meeting, source_recording=recording, source_label=speaker.label,
            source_spans=[list(s) for s in spans], speech_ms=round(found * 1000), enrolled_by=by,
            consent_confirmed_by=by, consent_confirmed_name=by.username, consent_at=now)
        _link(speaker=speaker, holder=holder, name=name, by=by)
        audit(request, AuditEvent.Action.VOICE_ENROL, user=by, obj=speaker, detail={
            "voiceprint": voiceprint.pk, "holder": name, "label": speaker.label, "speech_s": round(found),
            "consent_confirmed_by": by.username})
        # By name, as the routes in settings name it: the task module imports this one, never the reverse.
        build = signature("voices.tasks.voiceprint_build", args=(voiceprint.pk,))
        transaction.on_commit(build.apply_async)
    return voiceprint


def speaker_link(*, speaker: Speaker, by, user=None, person_name: str = "", request=None) -> SpeakerIdentity:
    """Say who a speaker is without remembering the voice (no biometric data, so no consent step)."""
    holder, name = _holder(user=user, person_name=person_name, by=by)
    with transaction.atomic():
        before = speaker.display_name
        identity = _link(speaker=speaker, holder=holder, name=name, by=by)
        audit(request, AuditEvent.Action.SPEAKER_RENAME, user=by, obj=speaker, detail={
            "label": speaker.label, "before": before, "after": name, "linked_to": identity.holder_key})
    return identity


def _link(*, speaker: Speaker, holder: dict, name: str, by, voiceprint=None, score=None) -> SpeakerIdentity:
    SpeakerIdentity.objects.filter(speaker=speaker).delete()
    identity = SpeakerIdentity.objects.create(speaker=speaker, name=name, created_by=by, voiceprint=voiceprint, score=score, **holder)
    speaker.display_name = name
    speaker.save(update_fields=["display_name"])
    return identity


def speaker_unlink(*, identity: SpeakerIdentity, by, request=None) -> Speaker:
    """Undo a recognition (or an editor's link): the speaker gets its label back unless renamed since."""
    speaker = identity.speaker
    with transaction.atomic():
        if speaker.display_name == identity.name:
            speaker.display_name = ""
            speaker.save(update_fields=["display_name"])
        identity.delete()
        audit(request, AuditEvent.Action.VOICE_UNDO, user=by, obj=speaker, detail={
            "label": speaker.label, "name": identity.name, "score": identity.score, "recognised": identity.is_recognised})
    return speaker


def voiceprint_build(*, voiceprint: Voiceprint) -> Voiceprint:
    """Embed the voiceprint's source speech with the active speaker-separation model (GPU worker)."""
    from transcription.reprocess import decode, diarize
    from transcription.reprocess.voiceprint import voice_embedding

    model_dir = settings.DIARIZATION_DIR
    recording = voiceprint.source_recording
    if not diarize.is_installed(model_dir):
        return _built(voiceprint, status=Voiceprint.Status.FAILED, error="Speaker separation is not installed on the worker.")
    if recording is None or not recording.file or not Path(recording.file.path).is_file():
        return _built(voiceprint, status=Voiceprint.Status.STALE, error="The recording it came from has been deleted: enrol the voice again from a newer meeting.")
    pipeline = diarize.load_pipelines(model_dir, settings.DIARIZATION_DEVICE or None, settings.DIARIZATION_BATCH_SIZE,
                                      copies=settings.DIARIZATION_PARALLEL_CHUNKS)[0]  # the same cached copies as reprocessing
    try:
        with tempfile.TemporaryDirectory(prefix="scribe-voice-") as folder:
            pcm_path = str(Path(folder) / "audio.pcm")
            decode.decode_to_pcm(recording.file.path, pcm_path)
            vector = voice_embedding(pipeline, decode.open_pcm(pcm_path), [tuple(s) for s in voiceprint.source_spans])
    except Exception as exc:  # the voiceprint must not stay "being built" for ever
        log.exception("voiceprint %s could not be built", voiceprint.pk)
        return _built(voiceprint, status=Voiceprint.Status.FAILED,
                      error=f"The voice could not be read from the recording ({exc.__class__.__name__}). An administrator can find the details in the worker log.")
    if vector is None:
        return _built(voiceprint, status=Voiceprint.Status.FAILED, error="Too little usable speech: enrol the voice from another meeting.")
    return _built(voiceprint, status=Voiceprint.Status.READY, embedding=[float(x) for x in vector],
                  pipeline_version=diarize.pipeline_version(model_dir), error="")


def _built(voiceprint: Voiceprint, **fields) -> Voiceprint:
    fields["built_at"] = timezone.now()
    Voiceprint.objects.filter(pk=voiceprint.pk).update(**fields)  # deleted meanwhile: nothing to update
    for name, value in fields.items():
        setattr(voiceprint, name, value)
    return voiceprint


def voiceprint_delete(*, voiceprint: Voiceprint, by, request=None, reason: str = "deleted on request") -> None:
    voiceprint._audit_by, voiceprint._audit_request, voiceprint._audit_reason = by, request, reason  # read by signals.py
    voiceprint.delete()


def voiceprints_purge(*, by, request=None) -> int:
    """Delete every voiceprint on the site (an administrator ending the use of voice recognition)."""
    count = 0
    for voiceprint in Voiceprint.objects.all():
        voiceprint_delete(voiceprint=voiceprint, by=by, request=request, reason="all voiceprints purged by an administrator")
        count += 1
    return count


def person_delete(*, person: Person, by, request=None) -> None:
    """Delete a person record with its voiceprints and speaker links (the names already shown stay)."""
    with transaction.atomic():
        for voiceprint in person.voiceprints.all():
            voiceprint_delete(voiceprint=voiceprint, by=by, request=request, reason="the person record was deleted")
        person.delete()


def voiceprints_delete_unused(*, days: int, now=None) -> int:
    """Retention: delete voiceprints that recognised nobody for `days` (counted from enrolment if never)."""
    cutoff = (now or timezone.now()) - timedelta(days=days)
    old = Voiceprint.objects.filter(Q(last_matched_at__lt=cutoff) | Q(last_matched_at__isnull=True, enrolled_at__lt=cutoff))
    count = 0
    for voiceprint in old:
        voiceprint_delete(voiceprint=voiceprint, by=None, reason=f"not used for {days} days (retention)")
        count += 1
    return count

"""Naming a meeting's speakers by voice once speaker separation has finished.

Two calls for any pipeline that separates speakers: `speaker_voices_write` on the GPU worker, while the
audio and the speaker turns are at hand (it embeds each speaker only if some enrolled voice could match),
and `speakers_recognise` once the meeting's speakers are stored. The speakers' own embeddings live only
in the job's work folder, removed with it: nobody's voice is kept without enrolment.
"""
import json
import logging
import os
from pathlib import Path

import numpy as np
from django.db import transaction
from django.utils import timezone

from meetings.audit import audit
from meetings.models import AuditEvent, Meeting

from .matching import match_speakers
from .models import SpeakerIdentity, Voiceprint
from .selectors import voiceprints_offered

log = logging.getLogger(__name__)
VOICES_FILE = "voices.json"


def recognition_wanted(*, meeting: Meeting, pipeline_version: str) -> bool:
    return voiceprints_offered(meeting=meeting).filter(status=Voiceprint.Status.READY, pipeline_version=pipeline_version).exists()


def speaker_voices_write(*, meeting: Meeting, pipeline, pcm, turns, pipeline_version: str, path: Path) -> None:
    """Write the separated speakers' voice embeddings to `path`, or nothing when no enrolled voice could match."""
    from transcription.reprocess.voiceprint import speaker_voices

    path = Path(path)
    path.unlink(missing_ok=True)
    if not turns or not recognition_wanted(meeting=meeting, pipeline_version=pipeline_version):
        return
    try:
        voices = speaker_voices(pipeline, pcm, turns)
    except Exception:  # recognition is a convenience: speaker separation itself has succeeded
        log.exception("embedding the speakers of meeting %s failed; they will not be recognised", meeting.pk)
        return
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps({"version": pipeline_version, "speakers": {k: v.tolist() for k, v in voices.items()}}), encoding="utf-8")
    os.replace(tmp, path)


def speaker_voices_read(path: Path) -> dict[str, np.ndarray]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return {label: np.asarray(vector, dtype=np.float32) for label, vector in data.get("speakers", {}).items()}


def speakers_recognise(*, meeting: Meeting, voices: dict[str, np.ndarray], pipeline_version: str) -> list[SpeakerIdentity]:
    """Name the stored speakers of `meeting` whose voice (`voices`, by label) matches an enrolled voice.

    Only voiceprints offered to the meeting's owner and built with `pipeline_version` are compared, and
    only at or above the site's threshold; a speaker already named or linked keeps its name. Voiceprints
    of another version are re-built from their source (queued) or marked stale. Each name applied is
    audited with its score and can be undone (`services.speaker_unlink`)."""
    from administration.models import SiteSettings

    offered = voiceprints_offered(meeting=meeting)
    if pipeline_version:
        _refresh_other_versions(offered.filter(status=Voiceprint.Status.READY).exclude(pipeline_version=pipeline_version))
    if not voices or not pipeline_version:
        return []
    candidates = {vp.pk: vp for vp in offered.filter(status=Voiceprint.Status.READY, pipeline_version=pipeline_version)}
    threshold = SiteSettings.load().voice_match_threshold
    matches = match_speakers(voices, {pk: vp.embedding for pk, vp in candidates.items()}, threshold,
                             holders={pk: vp.holder_key for pk, vp in candidates.items()})
    applied = []
    with transaction.atomic():
        speakers = {sp.label: sp for sp in meeting.speakers.select_for_update(of=("self",)).filter(identity__isnull=True, display_name="")}
        linked = {identity.holder_key for identity in SpeakerIdentity.objects.filter(speaker__meeting=meeting)}
        for match in matches:
            speaker, voiceprint = speakers.get(match.label), candidates[match.voiceprint_id]
            if speaker is None or voiceprint.holder_key in linked:
                continue
            applied.append(_apply(speaker=speaker, voiceprint=voiceprint, score=match.score, threshold=threshold))
    return applied


def _apply(*, speaker, voiceprint: Voiceprint, score: float, threshold: float) -> SpeakerIdentity:
    holder = {"user_id": voiceprint.user_id} if voiceprint.user_id else {"person_id": voiceprint.person_id}
    identity = SpeakerIdentity.objects.create(speaker=speaker, name=voiceprint.holder_name, voiceprint=voiceprint, score=score, **holder)
    speaker.display_name = voiceprint.holder_name
    speaker.save(update_fields=["display_name"])
    Voiceprint.objects.filter(pk=voiceprint.pk).update(last_matched_at=timezone.now())
    audit(None, AuditEvent.Action.VOICE_RECOGNISE, obj=speaker, detail={
        "label": speaker.label, "name": voiceprint.holder_name, "voiceprint": voiceprint.pk, "score": score, "threshold": threshold})
    return identity


def _refresh_other_versions(voiceprints) -> None:
    """Re-build voiceprints of another pipeline version from their source speech, or mark them stale."""
    from . import tasks

    for voiceprint in voiceprints:
        recording = voiceprint.source_recording
        if recording is not None and recording.file and voiceprint.source_spans:
            Voiceprint.objects.filter(pk=voiceprint.pk).update(status=Voiceprint.Status.PENDING)
            tasks.voiceprint_build.delay_on_commit(voiceprint.pk)
        else:
            Voiceprint.objects.filter(pk=voiceprint.pk).update(
                status=Voiceprint.Status.STALE, error="Speaker separation was updated and the source recording is gone: enrol the voice again.")

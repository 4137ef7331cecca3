"""Separating speakers again without transcribing again.

An editor asks for it after an administrator activated a better speaker-separation pipeline, or to say
how many people were present (exactly n, or between a minimum and a maximum). The job decodes the
recording and runs the same speaker-separation stage as a full reprocessing (pipeline.stage_diarize,
with the counts); its last stage takes the words stored in the transcript, corrections included,
and rebuilds segments and speakers from them (align: the segment rule and word-to-turn matching of
every transcript). Words keep their text and times. A speaker someone renamed keeps the name on the
new speaker who holds most of their words, if that is at least half of the new speaker's words.
"""
from collections import Counter

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from meetings.languages import search_config_for
from meetings.models import Meeting, ReprocessJob, Segment, Speaker
from meetings.segments import rules_from_settings, words_pack, words_spread, words_unpack

from . import diarize
from .align import AlignedSegment, Turn, align, read_rttm
from .pipeline import TURNS_FILE, JobCancelled, JobFailed, _remove_work_files, reprocess_queue, speakers_stored, work_path

MAX_SPEAKERS = 50
NOT_INSTALLED = "Speaker separation is not installed, so speakers cannot be separated again. An administrator can install it."


def speaker_counts(*, exact: int | None, minimum: int | None, maximum: int | None) -> dict:
    """The pipeline's count arguments from an editor's answers; ValidationError when they contradict."""
    for value in (exact, minimum, maximum):
        if value is not None and not 1 <= value <= MAX_SPEAKERS:
            raise ValidationError(f"The number of people must be between 1 and {MAX_SPEAKERS}.")
    if exact is not None and (minimum is not None or maximum is not None):
        raise ValidationError("Give either the exact number of people or a minimum and maximum, not both.")
    if minimum is not None and maximum is not None and minimum > maximum:
        raise ValidationError("The minimum number of people is larger than the maximum.")
    if exact is not None:
        return {"num_speakers": exact}
    return {k: v for k, v in (("min_speakers", minimum), ("max_speakers", maximum)) if v is not None}


def speakers_queue(*, meeting: Meeting, by, counts: dict, request=None) -> ReprocessJob:
    """Queue speaker separation again for the meeting's transcript and latest recording."""
    from django.conf import settings

    if not diarize.is_installed(settings.DIARIZATION_DIR):
        raise ValidationError(NOT_INSTALLED)
    recording = meeting.recordings.order_by("-source", "-created_at").first()
    if recording is None or not recording.file:
        raise ValidationError("This meeting has no recording to separate speakers in.")
    if not meeting.segments.exists():
        raise ValidationError("This meeting has no transcript yet; transcribe the recording first.")
    return reprocess_queue(meeting=meeting, recording=recording, by=by, request=request,
                           kind=ReprocessJob.Kind.SPEAKERS, speaker_counts=counts)


def stage_speakers_store(job: ReprocessJob, progress) -> None:
    if not job.diarization_version:  # the pipeline was removed after the job was queued
        raise JobFailed(NOT_INSTALLED)
    turns = read_rttm(work_path(job, TURNS_FILE).read_text(encoding="utf-8"))
    progress(0.5)
    speakers_replace(job=job, turns=turns)
    if ReprocessJob.objects.get(pk=job.pk).stage != ReprocessJob.Stage.DONE:
        raise JobCancelled()
    speakers_stored(job)  # new speakers: enrolled voices may name them
    _remove_work_files(job)


def speakers_replace(*, job: ReprocessJob, turns: list[Turn]) -> int:
    """Rebuild the meeting's segments and speakers from its stored words and new `turns`; mark the job
    done. One transaction, like transcript_replace; a second run finds the job done and does nothing."""
    with transaction.atomic():
        meeting = Meeting.objects.select_for_update().get(pk=job.meeting_id)
        job = ReprocessJob.objects.select_for_update().get(pk=job.pk)
        if job.stage == ReprocessJob.Stage.DONE or job.cancel_requested:
            return 0
        old = list(meeting.segments.select_related("speaker").order_by("start_ms", "id"))
        words, source = [], {}
        for seg in old:
            for word in words_unpack(seg.words) or words_spread(seg.text.split(), seg.start_ms, seg.end_ms):
                words.append(word)
                source[id(word)] = seg
        words.sort(key=lambda w: w.start_ms)
        segments = align(words, turns, rules_from_settings())
        names = carried_names(segments, source)
        meeting.segments.all().delete()
        meeting.speakers.all().delete()
        labels = sorted({s.speaker for s in segments if s.speaker})
        speakers = {sp.label: sp for sp in Speaker.objects.bulk_create(
            [Speaker(meeting=meeting, label=label, display_name=names.get(label, "")) for label in labels])}
        rows = [_row(meeting, job, s, [source[id(w)] for w in s.words], speakers) for s in segments]
        Segment.objects.bulk_create(rows, batch_size=2000)
        job.stage, job.percent, job.finished_at, job.error = ReprocessJob.Stage.DONE, 100, timezone.now(), ""
        job.save(update_fields=["stage", "percent", "finished_at", "error", "updated_at"])
        Meeting.objects.filter(pk=meeting.pk).update(status=Meeting.Status.READY)
    return len(rows)


def carried_names(segments: list[AlignedSegment], source: dict) -> dict[str, str]:
    """New label -> display name of the renamed old speaker whose words it mostly holds (one-to-one)."""
    overlap: Counter = Counter()
    sizes: Counter = Counter()
    named = {}
    for seg in segments:
        for word in seg.words:
            old = source[id(word)].speaker
            sizes[seg.speaker] += 1
            if seg.speaker and old is not None and old.display_name:
                overlap[seg.speaker, old.pk] += 1
                named[old.pk] = old.display_name
    names, used = {}, set()
    for (label, old_pk), count in overlap.most_common():
        if label not in names and old_pk not in used and count * 2 >= sizes[label]:
            names[label] = named[old_pk]
            used.add(old_pk)
    return names


def _row(meeting, job, segment: AlignedSegment, sources: list[Segment], speakers: dict) -> Segment:
    edited = max((s for s in sources if s.edited_at), key=lambda s: s.edited_at, default=None)
    asr_version = sources[0].model_version.split(" + ")[0] if sources[0].model_version else ""
    version = " + ".join(v for v in (asr_version, job.diarization_version) if v)
    return Segment(meeting=meeting, start_ms=segment.start_ms, end_ms=segment.end_ms, text=segment.text, words=words_pack(segment.words),
                   speaker=speakers.get(segment.speaker), origin=sources[0].origin, model_version=version[:200],
                   search_config=search_config_for(meeting.language),
                   edited_at=edited.edited_at if edited else None, edited_by_id=edited.edited_by_id if edited else None)

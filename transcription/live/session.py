"""Database side of a live session. Synchronous: consumers call these through database_sync_to_async."""
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, load_backend
from django.contrib.sessions.backends.base import SessionBase
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from meetings.access import MeetingAccessDenied, get_meeting_for_user
from meetings.audit import audit
from meetings.models import AuditEvent, Meeting, Recording, Segment
from meetings.services import meeting_update, segment_append

log = logging.getLogger(__name__)
REPLAY_LIMIT = 2000  # finals per catch-up message; a follower asks again for the rest


@dataclass
class HostStart:
    delay_ms: int
    recording_path: Path
    recording_id: int
    offset_ms: int  # audio already recorded: this stream's times start here
    final_seq: int  # live segments so far; the next final gets final_seq + 1


def session_user_still_valid(session: SessionBase, user_id: int):
    """The user behind `session` if it still signs in `user_id` (not signed out, expired, or password changed)."""
    fresh = session.__class__(session_key=session.session_key)
    if not session.session_key or not fresh.exists(session.session_key):
        return None
    if str(fresh.get(SESSION_KEY)) != str(user_id) or BACKEND_SESSION_KEY not in fresh:
        return None
    user = load_backend(fresh[BACKEND_SESSION_KEY]).get_user(user_id)
    if user is None or not user.is_active:
        return None
    verifier = getattr(user, "get_session_auth_hash", None)
    if verifier and not constant_time_compare(fresh.get(HASH_SESSION_KEY, ""), verifier()):
        return None
    return user


def check_access(session: SessionBase, user_id: int, meeting_id: int, needed: str) -> str | None:
    """None when all is well, else `signed_out` or `forbidden`."""
    user = session_user_still_valid(session, user_id)
    if user is None:
        return "signed_out"
    try:
        get_meeting_for_user(user, meeting_id, needed)
    except MeetingAccessDenied:
        return "forbidden"
    return None


def audit_socket(scope, action: str, *, user, meeting_id: int, detail: dict | None = None) -> None:
    headers = dict(scope.get("headers") or [])
    client = scope.get("client") or [None]
    request = type("SocketRequest", (), {"META": {
        "REMOTE_ADDR": client[0],
        "HTTP_X_REAL_IP": headers.get(b"x-real-ip", b"").decode("latin-1") or None,
        "HTTP_USER_AGENT": headers.get(b"user-agent", b"").decode("latin-1"),
    }})()
    audit(request, action, user=user, meeting_id=meeting_id, detail=detail or {})


def final_count(meeting_id: int) -> int:
    return Segment.objects.filter(meeting_id=meeting_id, origin=Segment.Origin.LIVE).count()


def live_recording(meeting: Meeting) -> Recording:
    """The meeting's live recording, created on first use; later sessions append to it."""
    recording = meeting.recordings.filter(source=Recording.Source.LIVE).order_by("-created_at").first()
    if recording is None:
        recording = Recording(meeting=meeting, source=Recording.Source.LIVE, content_type="audio/wav", original_name="live.wav")
        recording.file.name = f"recordings/{meeting.pk}/live-{timezone.now():%Y%m%d%H%M%S}.wav"
        recording.save()
    return recording


def host_start(*, meeting_id: int, user, delay_ms: int | None, scope) -> HostStart:
    """Start or resume the meeting's live session. A host back after the grace ended it (a long network
    drop) resumes it too: the page still holds the audio of the outage, and the transcription queued at
    the end would have been of part of the recording."""
    from transcription.reprocess.pipeline import reprocess_cancel_unfinished

    with transaction.atomic():
        meeting = Meeting.objects.select_for_update().get(pk=meeting_id)
        if meeting.status == Meeting.Status.PROCESSING:
            reprocess_cancel_unfinished(meeting_id=meeting_id)
        if delay_ms is not None and delay_ms != meeting.delay_ms:
            meeting_update(meeting=meeting, by=user, title=meeting.title, language=meeting.language, delay_ms=delay_ms)
        meeting.status = Meeting.Status.LIVE
        meeting.started_at = meeting.started_at or timezone.now()
        meeting.ended_at = None
        meeting.save(update_fields=["status", "started_at", "ended_at"])
        recording = live_recording(meeting)
        audit_socket(scope, AuditEvent.Action.LIVE_HOST, user=user, meeting_id=meeting_id, detail={"delay_ms": meeting.delay_ms})
    path = Path(settings.MEDIA_ROOT) / recording.file.name
    offset_ms = max(0, (path.stat().st_size - 44) // 32) if path.exists() else 0
    return HostStart(meeting.delay_ms, path, recording.pk, offset_ms, final_count(meeting_id))


def host_set_status(*, meeting_id: int, status: str) -> None:
    Meeting.objects.filter(pk=meeting_id).update(status=status)


def host_final(*, meeting_id: int, text: str, start_ms: int, end_ms: int, model_version: str = "", words: list | None = None) -> int:
    """Store a final caption with its words' times; returns its seq (its position among the meeting's live segments).

    The seq is counted under the meeting's row lock, not by the consumer: during a takeover an old
    host socket may still be flushing its last words while the new one captions, and both must not
    hand out the same number."""
    with transaction.atomic():
        meeting = Meeting.objects.select_for_update().get(pk=meeting_id)
        segment_append(meeting=meeting, text=text, start_ms=start_ms, end_ms=end_ms, origin=Segment.Origin.LIVE,
                       model_version=model_version, words=words or [])
        return final_count(meeting_id)


def recording_saved(*, recording_id: int, data_bytes: int, final: bool) -> None:
    """Record the file's size and length; at the end of a session also its checksum."""
    recording = Recording.objects.get(pk=recording_id)
    recording.size_bytes = data_bytes + 44
    recording.duration_ms = data_bytes // 32
    fields = ["size_bytes", "duration_ms"]
    if final:
        digest = hashlib.sha256()
        with open(Path(settings.MEDIA_ROOT) / recording.file.name, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        recording.sha256 = digest.hexdigest()
        fields.append("sha256")
    recording.save(update_fields=fields)


def host_end(*, meeting_id: int) -> None:
    """The host pressed Stop: the meeting leaves live and its audio is queued to be transcribed again."""
    from transcription.reprocess.pipeline import queue_reprocessing

    with transaction.atomic():
        Meeting.objects.filter(pk=meeting_id).update(status=Meeting.Status.PROCESSING, ended_at=timezone.now())
        queue_reprocessing(Meeting.objects.get(pk=meeting_id))


def host_end_if_live(*, meeting_id: int) -> bool:
    """End a session whose host did not come back within the grace; False if it already left live."""
    if meeting_status(meeting_id) not in (Meeting.Status.LIVE, Meeting.Status.PAUSED):
        return False
    host_end(meeting_id=meeting_id)
    return True


def replay_finals(*, meeting_id: int, after_seq: int) -> list[dict]:
    """Finals a follower missed: live segments in the order they were made, seq = position (1-based)."""
    rows = (
        Segment.objects.filter(meeting_id=meeting_id, origin=Segment.Origin.LIVE)
        .order_by("id")
        .values_list("text", "start_ms", "end_ms")[after_seq : after_seq + REPLAY_LIMIT]
    )
    return [
        {"type": "caption", "final": True, "seq": after_seq + i + 1, "text": text, "start_ms": s, "end_ms": e, "sent_at": 0.0}
        for i, (text, s, e) in enumerate(rows)
    ]


def meeting_status(meeting_id: int) -> str:
    return Meeting.objects.filter(pk=meeting_id).values_list("status", flat=True).first() or ""


def end_abandoned_sessions(*, host_present, idle_s: int) -> list[int]:
    """End live meetings whose host is gone: no host socket holds the meeting (`host_present(id)` is
    false) and no audio has reached the recording for `idle_s` seconds. A browser closed mid-meeting
    or a server restart would otherwise leave a meeting "live" for ever, never transcribed again.
    Returns the ids of the meetings ended."""
    cutoff = timezone.now().timestamp() - idle_s
    ended = []
    for meeting in Meeting.objects.filter(status__in=[Meeting.Status.LIVE, Meeting.Status.PAUSED]):
        if host_present(meeting.pk):
            continue
        recording = meeting.recordings.filter(source=Recording.Source.LIVE).order_by("-created_at").first()
        path = Path(settings.MEDIA_ROOT) / recording.file.name if recording and recording.file else None
        last_audio = path.stat().st_mtime if path and path.exists() else (meeting.started_at or meeting.created_at).timestamp()
        if last_audio > cutoff:
            continue
        log.warning("meeting %s was left live with no host for %s s; ending it", meeting.pk, idle_s)
        host_end(meeting_id=meeting.pk)
        audit(None, AuditEvent.Action.LIVE_HOST, user=None, meeting_id=meeting.pk, detail={"ended": "no host for %d s" % idle_s})
        ended.append(meeting.pk)
    return ended

from django.conf import settings
from django.contrib.auth.models import Group
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Func, Q
from django.db.models.functions import Upper

from .languages import LANGUAGE_CHOICES


def validate_delay_ms(value: int) -> None:
    if value % 80:
        raise ValidationError("The caption delay must be a multiple of 80 ms.")


class Meeting(models.Model):
    class Status(models.TextChoices):
        SCHEDULED = "scheduled", "Not started"
        LIVE = "live", "Live"
        PAUSED = "paused", "Paused"
        PROCESSING = "processing", "Processing"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    title = models.CharField(max_length=200)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="meetings")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    language = models.CharField(max_length=8, choices=LANGUAGE_CHOICES, blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SCHEDULED)
    delay_ms = models.PositiveIntegerField(
        default=480,
        validators=[MinValueValidator(80), MaxValueValidator(2400), validate_delay_ms],
        help_text="How far captions trail speech. Longer delays are more accurate.",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["owner", "-created_at"])]

    def __str__(self):
        return self.title

    @property
    def is_live(self) -> bool:
        return self.status in (self.Status.LIVE, self.Status.PAUSED)

    @property
    def started_or_created(self):
        return self.started_at or self.created_at


def recording_path(instance: "Recording", filename: str) -> str:
    # Names on disk never carry the uploader's file name: it may hold patient or client names.
    suffix = "".join(c for c in filename.rsplit(".", 1)[-1].lower() if c.isalnum())[:8] if "." in filename else "bin"
    return f"recordings/{instance.meeting_id}/{instance.sha256 or 'pending'}-{instance.source}.{suffix}"


class Recording(models.Model):
    class Source(models.TextChoices):
        LIVE = "live", "Captured live"
        UPLOAD = "upload", "Uploaded"

    meeting = models.ForeignKey(Meeting, on_delete=models.CASCADE, related_name="recordings")
    file = models.FileField(upload_to=recording_path, max_length=300)
    original_name = models.CharField(max_length=255, blank=True)
    content_type = models.CharField(max_length=100, default="audio/wav")
    size_bytes = models.BigIntegerField(default=0)
    duration_ms = models.BigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    source = models.CharField(max_length=8, choices=Source.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self):
        return f"{self.get_source_display()} recording of {self.meeting}"


class Speaker(models.Model):
    meeting = models.ForeignKey(Meeting, on_delete=models.CASCADE, related_name="speakers")
    label = models.CharField(max_length=64, help_text="The diarization label, e.g. SPEAKER_00.")
    display_name = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["label"]
        constraints = [models.UniqueConstraint(fields=["meeting", "label"], name="speaker_label_unique_per_meeting")]
        # Search's speaker filter matches either name case-insensitively, across all meetings.
        indexes = [models.Index(Upper("display_name"), name="speaker_display_name_upper"), models.Index(Upper("label"), name="speaker_label_upper")]

    def __str__(self):
        return self.name

    @property
    def name(self) -> str:
        return self.display_name or self.label


class Segment(models.Model):
    class Origin(models.TextChoices):
        LIVE = "live", "Live captions"
        REPROCESSED = "reprocessed", "Reprocessed"

    meeting = models.ForeignKey(Meeting, on_delete=models.CASCADE, related_name="segments")
    start_ms = models.BigIntegerField()
    end_ms = models.BigIntegerField()
    speaker = models.ForeignKey(Speaker, on_delete=models.SET_NULL, null=True, blank=True, related_name="segments")
    text = models.TextField()
    # The words with their times, [[text, start_ms, end_ms], ...] (meetings.segments.words_pack).
    # Kept inside the segment rather than as a row per word: words are only ever read and rewritten
    # with their segment, and a row per word would be ~10,000 rows per meeting-hour for nothing.
    words = models.JSONField(default=list, blank=True)
    origin = models.CharField(max_length=16, choices=Origin.choices)
    model_version = models.CharField(max_length=200, blank=True)
    # Indexed per segment, never per meeting: a tsvector is limited to 1 MB and positions to 16,383.
    search_config = models.CharField(max_length=32, default="simple")
    search_vector = SearchVectorField(null=True, editable=False)
    # Who may see the segment: its meeting's owner and the users it is shared with (ids), and the groups
    # it is shared with (ids negated). Written only by the database's triggers (migration 0010), from
    # the meeting and its shares; indexed with the words so a search can ask for "seen by this user".
    audience = ArrayField(models.BigIntegerField(), null=True, editable=False)
    edited_at = models.DateTimeField(null=True, blank=True)
    edited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["start_ms", "id"]
        indexes = [
            models.Index(fields=["meeting", "start_ms"]),
            # Words, meeting, speaker and audience in one GIN index: a search for a word among a user's
            # meetings ("ARRAY[meeting_id] && ids", which a b-tree cannot answer) or among everything the
            # user may see ("audience && the user's keys") is one index scan that skips through the
            # word's entries to those rows, instead of reading all of them.
            GinIndex(
                Func(F("meeting_id"), template="ARRAY[%(expressions)s]"),
                Func(F("speaker_id"), template="ARRAY[%(expressions)s]"),
                F("audience"),
                F("search_vector"),
                name="segment_search_audience_gin",
            ),
        ]
        constraints = [models.CheckConstraint(condition=Q(end_ms__gte=models.F("start_ms")), name="segment_ends_after_start")]

    def __str__(self):
        return f"{self.start_ms}-{self.end_ms}: {self.text[:40]}"


class ReprocessJob(models.Model):
    """One run of a recording through decode, transcription, speaker separation and storing.

    Stages run as separate Celery tasks, possibly on different hosts; each reads and writes files under
    `work_dir` in the shared media store, so a redelivered task finds its predecessors' output there.
    """

    class Stage(models.TextChoices):
        QUEUED = "queued", "Waiting to start"
        DECODING = "decoding", "Reading the recording"
        TRANSCRIBING = "transcribing", "Transcribing"
        DIARIZING = "diarizing", "Separating speakers"
        STORING = "storing", "Saving the transcript"
        DONE = "done", "Finished"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    class Kind(models.TextChoices):
        TRANSCRIPT = "transcript", "Transcribe and separate speakers"
        SPEAKERS = "speakers", "Separate speakers again"

    FINISHED = (Stage.DONE, Stage.FAILED, Stage.CANCELLED)

    meeting = models.ForeignKey(Meeting, on_delete=models.CASCADE, related_name="reprocess_jobs")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.TRANSCRIPT)
    # For speaker separation: {"num_speakers": n} or {"min_speakers": a, "max_speakers": b}, as people present.
    speaker_counts = models.JSONField(default=dict, blank=True)
    recording = models.ForeignKey(Recording, on_delete=models.CASCADE, related_name="reprocess_jobs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    stage = models.CharField(max_length=16, choices=Stage.choices, default=Stage.QUEUED)
    percent = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(100)])
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    delay_ms = models.PositiveIntegerField(default=960)
    asr_version = models.CharField(max_length=200, blank=True)
    diarization_version = models.CharField(max_length=200, blank=True, help_text="Empty: speaker separation was not installed.")
    # Seconds spent per stage, e.g. {"decode": 1.2}; for operators sizing GPU hosts.
    timings = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["meeting", "-created_at"])]

    def __str__(self):
        return f"Reprocessing of {self.meeting} ({self.stage})"

    @property
    def is_finished(self) -> bool:
        return self.stage in self.FINISHED

    @property
    def work_dir(self) -> str:
        """Folder under MEDIA_ROOT for this job's intermediate files."""
        return f"reprocess/{self.meeting_id}/{self.pk}"


class Sharing(models.Model):
    class Role(models.TextChoices):
        VIEW = "view", "Can view"
        EDIT = "edit", "Can edit"

    meeting = models.ForeignKey(Meeting, on_delete=models.CASCADE, related_name="sharings")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="sharings")
    group = models.ForeignKey(Group, on_delete=models.CASCADE, null=True, blank=True, related_name="sharings")
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.VIEW)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False, group__isnull=True) | Q(user__isnull=True, group__isnull=False),
                name="sharing_has_user_or_group",
            ),
            models.UniqueConstraint(fields=["meeting", "user"], condition=Q(user__isnull=False), name="sharing_unique_user"),
            models.UniqueConstraint(fields=["meeting", "group"], condition=Q(group__isnull=False), name="sharing_unique_group"),
        ]

    def __str__(self):
        return f"{self.user or self.group} {self.role} {self.meeting}"


class AuditEvent(models.Model):
    """Who saw, exported or changed what. Kept when the user or meeting is deleted."""

    class Action(models.TextChoices):
        LOGIN = "login", "Signed in"
        LOGIN_FAILED = "login_failed", "Failed sign-in"
        LOGOUT = "logout", "Signed out"
        MEETING_CREATE = "meeting_create", "Created a meeting"
        MEETING_VIEW = "meeting_view", "Opened a meeting"
        MEETING_UPDATE = "meeting_update", "Changed a meeting"
        MEETING_DELETE = "meeting_delete", "Deleted a meeting"
        MEDIA_DOWNLOAD = "media_download", "Played or downloaded audio"
        EXPORT = "export", "Exported a transcript"
        SEARCH = "search", "Searched"
        SEGMENT_EDIT = "segment_edit", "Edited transcript text"
        SPEAKER_RENAME = "speaker_rename", "Renamed a speaker"
        SHARE_ADD = "share_add", "Shared a meeting"
        SHARE_REMOVE = "share_remove", "Stopped sharing a meeting"
        ACCESS_DENIED = "access_denied", "Was refused access"
        LIVE_FOLLOW = "live_follow", "Followed live captions"
        LIVE_HOST = "live_host", "Streamed live audio"
        ADMIN = "admin", "Changed users or groups"
        MODEL_IMPORT = "model_import", "Imported a model"
        MODEL_VERIFY = "model_verify", "Verified a model"
        MODEL_ACTIVATE = "model_activate", "Activated a model"
        MODEL_ROLLBACK = "model_rollback", "Rolled back a model"
        SETTINGS_CHANGE = "settings_change", "Changed site settings"
        RETENTION_DELETE = "retention_delete", "Deleted old audio or transcripts"
        AUDIT_EXPORT = "audit_export", "Exported the audit log"
        RECORDING_UPLOAD = "recording_upload", "Uploaded a recording"
        REPROCESS_CANCEL = "reprocess_cancel", "Cancelled reprocessing"
        SPEAKER_MERGE = "speaker_merge", "Merged speakers"
        LOGIN_LOCKED = "login_locked", "Was locked out after failed sign-ins"
        LOCKOUT_LIFTED = "lockout_lifted", "Lifted a sign-in lockout"
        VOICE_ENROL = "voice_enrol", "Enrolled a voice"
        VOICE_RECOGNISE = "voice_recognise", "Named a speaker by voice"
        VOICE_UNDO = "voice_undo", "Undid a voice recognition"
        VOICE_DELETE = "voice_delete", "Deleted a voiceprint"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    actor_username = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=32, choices=Action.choices, db_index=True)
    object_type = models.CharField(max_length=50, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    meeting_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    detail = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_username} {self.action}"

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from meetings.models import validate_delay_ms

DELAY_VALIDATORS = [MinValueValidator(80), MaxValueValidator(2400), validate_delay_ms]


class ModelVersion(models.Model):
    """A model weights folder on this machine, fingerprinted file by file when it was imported."""

    class Kind(models.TextChoices):
        ASR = "asr", "Speech recognition (Voxtral Realtime)"
        DIARIZATION = "diarization", "Speaker separation (pyannote)"

    class Status(models.TextChoices):
        IMPORTING = "importing", "Importing"
        IMPORTED = "imported", "Imported (not yet verified)"
        VERIFIED = "verified", "Verified"
        ACTIVE = "active", "Active"
        FAILED = "failed", "Failed"
        RETIRED = "retired", "Retired"

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    path = models.CharField(max_length=1000)
    size_bytes = models.BigIntegerField(default=0)
    files = models.JSONField(default=dict, blank=True, help_text="SHA-256 and size of every file, by relative name.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.IMPORTING)
    error = models.TextField(blank=True)
    # The running import or verification, for the page that polls it. The status does not change while
    # a verification runs, so that an active model stays active (and the only active one) meanwhile.
    checking = models.BooleanField(default=False)
    progress_bytes = models.BigIntegerField(default=0)
    total_bytes = models.BigIntegerField(default=0)
    imported_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    imported_at = models.DateTimeField(auto_now_add=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-imported_at", "-id"]
        constraints = [
            # Exactly one model of each kind serves; the database refuses a second even under a race.
            models.UniqueConstraint(fields=["kind"], condition=Q(status="active"), name="one_active_model_per_kind"),
        ]

    def __str__(self):
        return self.name

    @property
    def can_activate(self) -> bool:
        return self.status in (self.Status.VERIFIED, self.Status.RETIRED) and not self.checking

    @property
    def progress_percent(self) -> int:
        return int(100 * self.progress_bytes / self.total_bytes) if self.total_bytes else 0


class SiteSettings(models.Model):
    """Site-wide choices an administrator makes in the console. One row (pk 1); see SiteSettings.load()."""

    live_delay_ms = models.PositiveIntegerField(
        validators=DELAY_VALIDATORS, verbose_name="Default live caption delay (ms)",
        help_text="New meetings start with this delay: 80 to 2400 ms in steps of 80. Longer delays are more accurate.")
    reprocess_delay_ms = models.PositiveIntegerField(
        validators=DELAY_VALIDATORS, verbose_name="Reprocessing delay (ms)",
        help_text="The delay used when recordings are transcribed again for accuracy: 80 to 2400 ms in steps of 80.")
    max_live_streams = models.PositiveIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(1024)], verbose_name="Most live meetings at once",
        help_text="Meetings beyond this number are recorded without live captions. Each engine is also limited by its GPU memory.")
    audio_retention_days = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)], verbose_name="Delete audio after (days)",
        help_text="Recordings older than this are deleted every night. Empty: keep audio.")
    transcript_retention_days = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)], verbose_name="Delete transcripts after (days)",
        help_text="Transcript text of meetings older than this is deleted every night. Empty: keep transcripts.")
    voice_match_threshold = models.FloatField(
        default=0.75, validators=[MinValueValidator(-1.0), MaxValueValidator(1.0)], verbose_name="Voice recognition threshold",
        help_text="How alike (cosine similarity, up to 1.0) a speaker's voice and an enrolled voice must be for the name to be applied. Higher: fewer wrong names, more speakers left unnamed.")
    voiceprint_retention_days = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)], verbose_name="Delete unused voiceprints after (days)",
        help_text="Voiceprints not recognised in any meeting for this long are deleted every night. Empty: keep them.")
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        verbose_name_plural = "site settings"
        constraints = [models.CheckConstraint(condition=Q(pk=1), name="site_settings_single_row")]

    def __str__(self):
        return "Site settings"

    @classmethod
    def load(cls) -> "SiteSettings":
        """The site's settings; the first call creates the row from the environment's defaults."""
        row, _ = cls.objects.get_or_create(pk=1, defaults={
            "live_delay_ms": settings.ASR_DEFAULT_DELAY_MS,
            "reprocess_delay_ms": settings.ASR_REPROCESS_DELAY_MS,
            "max_live_streams": settings.ASR_MAX_STREAMS,
        })
        return row


class StatusSample(models.Model):
    """One minute of the site's load, written by Celery beat, drawn on the status page."""

    at = models.DateTimeField(db_index=True)
    engine_hosts = models.PositiveIntegerField(default=0)
    active_streams = models.PositiveIntegerField(default=0)
    capacity = models.PositiveIntegerField(default=0)
    step_ms_p50 = models.FloatField(null=True, blank=True)
    step_ms_p95 = models.FloatField(null=True, blank=True)
    queued_tasks = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["at"]

    def __str__(self):
        return f"{self.at:%H:%M} {self.active_streams}/{self.capacity} streams"

"""Known voices: people, their enrolled voiceprints, and which meeting speaker is which person.

A voiceprint is biometric data. It is kept only with recorded consent, lives as long as the meeting it
was enrolled from (and its holder), is offered for recognition only in meetings whose owner can see
that source meeting, and never leaves the server in an export.
"""
from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

from meetings.models import Meeting, Recording, Speaker

_ONE_HOLDER = Q(user__isnull=False, person__isnull=True) | Q(user__isnull=True, person__isnull=False)


class Person(models.Model):
    """Someone who speaks in meetings but has no account here (a visiting consultant, a board member)."""

    name = models.CharField(max_length=100)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(Lower("name"), name="person_name_unique")]

    def __str__(self):
        return self.name


def user_display_name(user) -> str:
    return (user.get_full_name() or user.username)[:100]


class Voiceprint(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Being built"
        READY = "ready", "Ready"
        FAILED = "failed", "Could not be built"
        STALE = "stale", "Out of date: enrol again"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="voiceprints")
    person = models.ForeignKey(Person, on_delete=models.CASCADE, null=True, blank=True, related_name="voiceprints")
    holder_name = models.CharField(max_length=100, help_text="The name applied to recognised speakers.")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)
    embedding = ArrayField(models.FloatField(), default=list, blank=True)
    pipeline_version = models.CharField(max_length=200, blank=True, help_text="The speaker-separation model the embedding came from.")
    # Where the voice came from, to re-build it with a new model; the voiceprint goes with the meeting.
    source_meeting = models.ForeignKey(Meeting, on_delete=models.CASCADE, related_name="+")
    source_recording = models.ForeignKey(Recording, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    source_label = models.CharField(max_length=64)
    source_spans = models.JSONField(default=list, blank=True, help_text="[[start_ms, end_ms], ...] of clean speech.")
    speech_ms = models.PositiveIntegerField(default=0)
    enrolled_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    enrolled_at = models.DateTimeField(auto_now_add=True)
    consent_confirmed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    consent_confirmed_name = models.CharField(max_length=150, help_text="Who confirmed consent, kept if their account goes.")
    consent_at = models.DateTimeField()
    built_at = models.DateTimeField(null=True, blank=True)
    last_matched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["holder_name", "-enrolled_at", "-id"]
        constraints = [models.CheckConstraint(condition=_ONE_HOLDER, name="voiceprint_has_user_or_person")]
        indexes = [models.Index(fields=["status", "pipeline_version"])]

    def __str__(self):
        return f"Voiceprint of {self.holder_name} ({self.get_status_display()})"

    @property
    def holder_key(self) -> str:
        return f"u{self.user_id}" if self.user_id else f"p{self.person_id}"


class SpeakerIdentity(models.Model):
    """A meeting speaker known to be a person: linked by an editor, or recognised by voice (with a score)."""

    speaker = models.OneToOneField(Speaker, on_delete=models.CASCADE, related_name="identity")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    person = models.ForeignKey(Person, on_delete=models.CASCADE, null=True, blank=True, related_name="speakers")
    voiceprint = models.ForeignKey(Voiceprint, on_delete=models.SET_NULL, null=True, blank=True, related_name="recognitions")
    score = models.FloatField(null=True, blank=True, help_text="Empty: linked by an editor. A number: recognised by voice.")
    name = models.CharField(max_length=100)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "speaker identities"
        constraints = [models.CheckConstraint(condition=_ONE_HOLDER, name="speaker_identity_has_user_or_person")]

    def __str__(self):
        return f"{self.speaker.label} is {self.name}"

    @property
    def is_recognised(self) -> bool:
        return self.score is not None

    @property
    def holder_key(self) -> str:
        return f"u{self.user_id}" if self.user_id else f"p{self.person_id}"

"""Every voiceprint deletion is audited, including those that follow a user, person record or meeting; and
speakers are embedded and recognised when reprocessing separates and stores them; the retention job
deletes voiceprints unused for the site's period."""
from django.db.models.signals import post_delete
from django.dispatch import receiver

from administration.hooks import retention_due
from meetings.audit import audit
from meetings.models import AuditEvent
from transcription.reprocess.hooks import speakers_separated, speakers_stored

from .models import Voiceprint
from .recognition import speaker_voices_read, speaker_voices_write, speakers_recognise
from .services import voiceprints_delete_unused

CASCADE_REASON = "its person, user account or source meeting was deleted"


@receiver(post_delete, sender=Voiceprint)
def _audit_voiceprint_delete(sender, instance: Voiceprint, **kwargs):
    # voiceprint_delete and the retention job set these before deleting; anything else is a cascade.
    audit(getattr(instance, "_audit_request", None), AuditEvent.Action.VOICE_DELETE, user=getattr(instance, "_audit_by", None), obj=instance, meeting_id=instance.source_meeting_id,
          detail={"holder": instance.holder_name, "source_meeting": instance.source_meeting_id,
                  "reason": getattr(instance, "_audit_reason", CASCADE_REASON)})


@receiver(speakers_separated)
def _embed_separated_speakers(sender, *, meeting, pipeline, pcm, turns, pipeline_version, path, **kwargs):
    speaker_voices_write(meeting=meeting, pipeline=pipeline, pcm=pcm, turns=turns, pipeline_version=pipeline_version, path=path)


@receiver(speakers_stored)
def _recognise_stored_speakers(sender, *, meeting, pipeline_version, path, **kwargs):
    speakers_recognise(meeting=meeting, voices=speaker_voices_read(path), pipeline_version=pipeline_version)


@receiver(retention_due)
def _delete_unused_voiceprints(sender, *, site, now, **kwargs):
    if site.voiceprint_retention_days:
        return {"voiceprints": voiceprints_delete_unused(days=site.voiceprint_retention_days, now=now)}
    return {}

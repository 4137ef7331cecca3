"""Every voiceprint deletion is audited, including those that follow a user, person record or meeting."""
from django.db.models.signals import post_delete
from django.dispatch import receiver

from meetings.audit import audit
from meetings.models import AuditEvent

from .models import Voiceprint

CASCADE_REASON = "its person, user account or source meeting was deleted"


@receiver(post_delete, sender=Voiceprint)
def _audit_voiceprint_delete(sender, instance: Voiceprint, **kwargs):
    # voiceprint_delete and the retention job set these before deleting; anything else is a cascade.
    audit(getattr(instance, "_audit_request", None), AuditEvent.Action.VOICE_DELETE, user=getattr(instance, "_audit_by", None), obj=instance, meeting_id=instance.source_meeting_id,
          detail={"holder": instance.holder_name, "source_meeting": instance.source_meeting_id,
                  "reason": getattr(instance, "_audit_reason", CASCADE_REASON)})

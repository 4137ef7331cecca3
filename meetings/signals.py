from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from axes.signals import user_locked_out
from django.dispatch import receiver

from .audit import audit
from .models import AuditEvent


@receiver(user_logged_in)
def _audit_login(sender, request, user, **kwargs):
    audit(request, AuditEvent.Action.LOGIN, user=user)


@receiver(user_logged_out)
def _audit_logout(sender, request, user, **kwargs):
    if user is not None:
        audit(request, AuditEvent.Action.LOGOUT, user=user)


@receiver(user_login_failed)
def _audit_login_failed(sender, credentials, request=None, **kwargs):
    audit(request, AuditEvent.Action.LOGIN_FAILED, user=None, detail={"username": credentials.get("username", "")[:150]})


@receiver(user_locked_out)
def _audit_lockout(sender, request=None, username=None, ip_address=None, **kwargs):
    # Sent for the failure that locks and for every attempt refused while locked.
    audit(request, AuditEvent.Action.LOGIN_LOCKED, user=None, detail={"username": (username or "")[:150], "ip_address": ip_address or ""})

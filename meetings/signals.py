from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
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

"""The audit trail: one helper that every view, consumer, export and task writes through."""
from django.db.models import Model

from .models import AuditEvent


def client_address(request) -> str | None:
    # Behind nginx the peer is the proxy; deploy/ configures it to set X-Real-IP from the real client.
    if request is None:
        return None
    meta = getattr(request, "META", None)
    if meta is not None:
        return meta.get("HTTP_X_REAL_IP") or meta.get("REMOTE_ADDR") or None
    return None


def audit(request, action: str, *, user=None, obj: Model | None = None, meeting_id: int | None = None, detail: dict | None = None) -> AuditEvent:
    """Record `action` by `user` (default: the request's user) on `obj`."""
    if user is None and request is not None and getattr(request, "user", None) is not None:
        user = request.user if request.user.is_authenticated else None
    if meeting_id is None and obj is not None:
        meeting_id = obj.pk if obj._meta.model_name == "meeting" else getattr(obj, "meeting_id", None)
    meta = getattr(request, "META", {}) if request is not None else {}
    return AuditEvent.objects.create(
        actor=user,
        actor_username=getattr(user, "username", "") or "",
        action=action,
        object_type=obj._meta.model_name if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        meeting_id=meeting_id,
        detail=detail or {},
        ip_address=client_address(request),
        user_agent=meta.get("HTTP_USER_AGENT", "")[:300],
    )

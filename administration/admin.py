"""Users and groups in Django's admin, with every change also written to Scribe's audit trail.

Django's own admin log keeps the change message; the audit trail is where administrators look for who
did what, next to sign-ins and meeting access, so the admin's add, change and delete go there too.
"""
from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User

from meetings.audit import audit
from meetings.models import AuditEvent


def _message_text(message) -> str:
    if isinstance(message, list):  # Django's structured change message
        return "; ".join(f"{kind} {', '.join(item.get('fields', []))}".strip() for entry in message for kind, item in entry.items())
    return str(message or "")


class AuditedAdmin:
    def log_addition(self, request, obj, message):
        audit(request, AuditEvent.Action.ADMIN, obj=obj, detail={"change": "added", "object": str(obj), "message": _message_text(message)})
        return super().log_addition(request, obj, message)

    def log_change(self, request, obj, message):
        audit(request, AuditEvent.Action.ADMIN, obj=obj, detail={"change": "changed", "object": str(obj), "message": _message_text(message)})
        return super().log_change(request, obj, message)

    def log_deletions(self, request, queryset):
        for obj in queryset:
            audit(request, AuditEvent.Action.ADMIN, obj=obj, detail={"change": "deleted", "object": str(obj)})
        return super().log_deletions(request, queryset)


class AuditedUserAdmin(AuditedAdmin, UserAdmin):
    pass


class AuditedGroupAdmin(AuditedAdmin, GroupAdmin):
    pass


admin.site.unregister(User)
admin.site.unregister(Group)
admin.site.register(User, AuditedUserAdmin)
admin.site.register(Group, AuditedGroupAdmin)
admin.site.site_header = "Scribe administration"
admin.site.site_title = "Scribe"
admin.site.index_title = "Users and groups"


# Sign-in lockouts (django-axes): an administrator lifts one by deleting its access attempt here;
# the lift goes to the audit trail with who did it.
from axes.admin import AccessAttemptAdmin  # noqa: E402
from axes.models import AccessAttempt  # noqa: E402


class AuditedAccessAttemptAdmin(AccessAttemptAdmin):
    def _audit_lift(self, request, attempt):
        audit(request, AuditEvent.Action.LOCKOUT_LIFTED, detail={"username": attempt.username or "", "ip_address": attempt.ip_address or ""})

    def delete_model(self, request, obj):
        self._audit_lift(request, obj)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for attempt in queryset:
            self._audit_lift(request, attempt)
        super().delete_queryset(request, queryset)


if admin.site.is_registered(AccessAttempt):
    admin.site.unregister(AccessAttempt)
admin.site.register(AccessAttempt, AuditedAccessAttemptAdmin)

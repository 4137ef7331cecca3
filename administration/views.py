"""The administration console under /console/: status, models, site settings, audit log. Staff only."""
import functools

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from meetings.audit import audit
from meetings.models import AuditEvent

from . import registry, selectors, site, status, tasks
from .chart import line_chart
from .forms import AuditFilterForm, ImportForm, SiteSettingsForm
from .models import ModelVersion


def staff_required(view):
    """Signed-in staff only; anyone else signed in gets 403 (and the refusal is audited)."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if not (request.user.is_active and request.user.is_staff):
            audit(request, AuditEvent.Action.ACCESS_DENIED, detail={"path": request.path, "needed": "staff"})
            raise PermissionDenied("The console is for site administrators.")
        return view(request, *args, **kwargs)

    return wrapper


@staff_required
@require_GET
def status_page(request):
    now = timezone.now()
    samples = status.recent_samples(hours=1, now=now)
    charts = [
        line_chart(samples, id="streams", title="Live streams, last hour", unit="streams", now=now,
                   series=[("active_streams", "active", "line-a"), ("capacity", "capacity", "line-b")]),
        line_chart(samples, id="step", title="Engine step time, last hour", unit="ms", now=now,
                   series=[("step_ms_p50", "median", "line-a"), ("step_ms_p95", "95th percentile", "line-b")]),
    ]
    context = {"engines": status.engine_status(), "celery": status.celery_status(), "charts": charts, "samples": samples,
               "active_models": {k: registry.active_model(k) for k in ModelVersion.Kind.values}}
    return render(request, "console/status.html", context)


def _models_page(request, form, status=200):
    context = {"versions": ModelVersion.objects.select_related("imported_by"), "form": form,
               "rollback_kinds": ModelVersion.Kind.choices}
    return render(request, "console/models.html", context, status=status)


@staff_required
@require_GET
def model_list(request):
    return _models_page(request, ImportForm())


@staff_required
@require_POST
def model_import(request):
    form = ImportForm(request.POST)
    if form.is_valid():
        try:
            version = registry.model_version_register(by=request.user, **form.cleaned_data)
        except registry.RegistryError as exc:
            form.add_error("path", str(exc))
        else:
            tasks.import_model_version.delay_on_commit(version.pk)
            return redirect("console:model", version.pk)
    return _models_page(request, form, status=400)


@staff_required
@require_GET
def model_detail(request, version_id):
    version = get_object_or_404(ModelVersion.objects.select_related("imported_by"), pk=version_id)
    files = sorted(version.files.items())
    return render(request, "console/model.html", {"version": version, "files": files})


@staff_required
@require_GET
def model_progress(request, version_id):
    version = get_object_or_404(ModelVersion, pk=version_id)
    return JsonResponse({"status": version.status, "status_label": version.get_status_display(), "checking": version.checking,
                         "done_bytes": version.progress_bytes, "total_bytes": version.total_bytes,
                         "percent": version.progress_percent, "error": version.error})


@staff_required
@require_POST
def model_verify(request, version_id):
    version = get_object_or_404(ModelVersion, pk=version_id)
    try:
        registry.model_version_start_check(version=version)
    except registry.RegistryError as exc:
        messages.error(request, str(exc))
    else:
        tasks.verify_model_version.delay_on_commit(version.pk, request.user.pk)
    return redirect("console:model", version.pk)


@staff_required
@require_POST
def model_activate(request, version_id):
    version = get_object_or_404(ModelVersion, pk=version_id)
    try:
        registry.model_version_activate(version=version, by=request.user, request=request)
    except registry.RegistryError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{version.name} is now active. New meetings use it within a few seconds; "
                                  "meetings already being captioned finish on the previous model.")
    return redirect("console:model", version.pk)


@staff_required
@require_POST
def model_rollback(request, kind):
    if kind not in ModelVersion.Kind.values:
        raise PermissionDenied("No such model kind.")
    try:
        version = registry.model_version_rollback(kind=kind, by=request.user, request=request)
    except registry.RegistryError as exc:
        messages.error(request, str(exc))
        return redirect("console:models")
    messages.success(request, f"Rolled back: {version.name} is active again.")
    return redirect("console:model", version.pk)


@staff_required
@require_http_methods(["GET", "POST"])
def site_settings(request):
    row = site.site_settings()
    form = SiteSettingsForm(request.POST or None, instance=row)
    if request.method == "POST" and form.is_valid():
        try:
            site.site_settings_update(by=request.user, request=request, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, "Settings saved.")
            return redirect("console:settings")
    return render(request, "console/settings.html", {"form": form, "row": row}, status=400 if form.errors else 200)


def _filtered_events(request):
    form = AuditFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    return form, selectors.audit_events(**{k: v for k, v in filters.items() if v})


@staff_required
@require_GET
def audit_log(request):
    form, events = _filtered_events(request)
    page = Paginator(events, 100).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "console/audit.html", {"form": form, "page": page, "query": query.urlencode()})


@staff_required
@require_GET
def audit_export(request):
    form, events = _filtered_events(request)
    audit(request, AuditEvent.Action.AUDIT_EXPORT, detail={"filters": request.GET.dict()})
    response = StreamingHttpResponse(selectors.audit_csv_lines(events), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="scribe-audit-{timezone.localdate():%Y-%m-%d}.csv"'
    return response

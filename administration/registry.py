"""The model registry: import, verify, activate and roll back model weights folders.

Import reads every file once and keeps its SHA-256 and size on the ModelVersion row; it also writes
the folder's manifest the first time and checks it on later imports (administration/weights.py).
Verification reads the folder again and compares it with the checksums in the database, a record
that a changed disk cannot change with it. Only a verified model can be activated, and the database
allows one active model per kind. Speech engines pick up a newly active model by themselves
(transcription/engine_host.py).
"""
import os
import time
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from meetings.audit import audit
from meetings.models import AuditEvent

from . import weights
from .models import ModelVersion

Status = ModelVersion.Status
PROGRESS_EVERY_S = 0.5  # how often a running import writes its progress for the polling page


class RegistryError(Exception):
    """The request cannot be done; the message says why and what to do, for an administrator."""


def _kind_label(kind: str) -> str:
    return ModelVersion.Kind(kind).label


def _free_name(base: str) -> str:
    name, n = base, 2
    while ModelVersion.objects.filter(name=name).exists():
        name, n = f"{base}-{n}", n + 1
    return name


def folder_under_model_roots(folder: Path) -> Path:
    """`folder` with links and `..` resolved, if that lies under one of settings.MODEL_IMPORT_ROOTS.

    Anything else gets one message, whether or not it exists, so the form cannot be used to probe
    the server's disks; a link inside a root that points elsewhere is outside too.
    """
    resolved = Path(os.path.realpath(folder))
    roots = [Path(os.path.realpath(root)) for root in settings.MODEL_IMPORT_ROOTS]
    if not any(resolved == root or root in resolved.parents for root in roots):
        raise RegistryError("Model folders can only be imported from the site's model folders ("
                            + ", ".join(map(str, settings.MODEL_IMPORT_ROOTS)) + "). Copy the folder there first.")
    return resolved


def model_version_register(*, path: str, kind: str | None = None, name: str = "", by=None) -> ModelVersion:
    """Check that `path` is a model folder of `kind` and add it to the registry, not yet read (fast).

    Raises RegistryError for a relative or missing path, a folder of another kind, Mistral's native
    layout (with conversion instructions) or a name already in use.
    """
    folder = Path(path).expanduser()
    if not folder.is_absolute():
        raise RegistryError(f"Give the full path of the model folder (starting with /), not {path!r}.")
    folder = folder_under_model_roots(folder)
    if not folder.is_dir():
        raise RegistryError(f"There is no folder at {folder}, or this service cannot read it.")
    try:
        detected = weights.detect_kind(folder)
    except weights.WeightsError as exc:
        raise RegistryError(str(exc)) from None
    if kind and kind != detected:
        raise RegistryError(f"{folder} holds a {_kind_label(detected)} model, not {_kind_label(kind)}.")
    name = name.strip() or _free_name(folder.resolve().name)
    if ModelVersion.objects.filter(name=name).exists():
        raise RegistryError(f"A model called {name!r} is already registered; choose another name.")
    return ModelVersion.objects.create(name=name, kind=detected, path=str(folder.resolve()), imported_by=by, checking=True)


def _progress_saver(version: ModelVersion, also=None):
    """Progress written to the row for the polling page (and passed to `also`), at most every PROGRESS_EVERY_S."""
    last = [0.0]

    def save(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_S or done == total:
            last[0] = now
            ModelVersion.objects.filter(pk=version.pk).update(progress_bytes=done, total_bytes=total)
            if also:
                also(done, total)

    return save


def _stored(entries: dict[str, weights.FileEntry]) -> dict:
    return {name: {"sha256": e.sha256, "size": e.size} for name, e in entries.items()}


def _fail(version: ModelVersion, message: str, action: str, by, request) -> ModelVersion:
    # A failed check of the active model leaves it active: only the administrator may replace it,
    # and the engine refuses to load a folder that does not match (engine_host checks on load).
    if version.status != Status.ACTIVE:
        version.status = Status.FAILED
    version.error, version.checking = message, False
    version.save(update_fields=["status", "error", "checking"])
    audit(request, action, user=by, obj=version, detail={"name": version.name, "ok": False, "error": message})
    return version


def model_version_import(*, version: ModelVersion, request=None, progress=None) -> ModelVersion:
    """Read every file of a registered folder and keep its checksums. Slow: run it in a task or command.

    A folder that came with a manifest (from another Scribe site, or imported here before) is checked
    against it and counts as verified; a folder without one gets one written and must be verified.
    """
    by = version.imported_by
    try:
        kind, entries, written = weights.verify_folder(Path(version.path), progress=_progress_saver(version, progress))
    except (weights.WeightsError, OSError) as exc:
        return _fail(version, str(exc), AuditEvent.Action.MODEL_IMPORT, by, request)
    if kind != version.kind:
        return _fail(version, f"The folder now holds a {_kind_label(kind)} model.", AuditEvent.Action.MODEL_IMPORT, by, request)
    had_manifest = not written and (Path(version.path) / weights.MANIFEST_NAME).exists()
    version.files = _stored(entries)
    version.size_bytes = sum(e.size for e in entries.values())
    version.progress_bytes = version.total_bytes = version.size_bytes  # the whole row is saved below
    version.status = Status.VERIFIED if had_manifest else Status.IMPORTED
    version.verified_at = timezone.now() if had_manifest else None
    version.error, version.checking = "", False
    version.save()
    manifest = "checked" if had_manifest else ("written" if written else "not written (read-only folder)")
    audit(request, AuditEvent.Action.MODEL_IMPORT, user=by, obj=version, detail={
        "name": version.name, "kind": version.kind, "path": version.path, "files": len(entries),
        "size_bytes": version.size_bytes, "manifest": manifest, "ok": True})
    return version


def model_version_start_check(*, version: ModelVersion) -> ModelVersion:
    """Mark a verification as under way (before its task is queued); refuse while another runs."""
    if ModelVersion.objects.filter(pk=version.pk, checking=False).exclude(status=Status.IMPORTING).update(
            checking=True, progress_bytes=0, total_bytes=version.size_bytes) != 1:
        raise RegistryError(f"{version.name} is being read already; wait until that finishes.")
    version.refresh_from_db()
    return version


def model_version_verify(*, version: ModelVersion, by=None, request=None, progress=None) -> ModelVersion:
    """Read the folder again and compare every file with the checksums taken at import."""
    if not version.files:
        return _fail(version, "This version was never imported completely; fix the folder and import it again.",
                     AuditEvent.Action.MODEL_VERIFY, by, request)
    expected = {name: weights.FileEntry(**entry) for name, entry in version.files.items()}
    try:
        actual = weights.fingerprint(Path(version.path), progress=_progress_saver(version, progress))
    except (weights.WeightsError, OSError) as exc:
        return _fail(version, str(exc), AuditEvent.Action.MODEL_VERIFY, by, request)
    problems = weights.compare(expected, actual)
    if problems:
        message = "The model folder no longer matches the copy that was imported: " + "; ".join(problems) + "."
        return _fail(version, message, AuditEvent.Action.MODEL_VERIFY, by, request)
    if version.status in (Status.IMPORTED, Status.FAILED):
        version.status = Status.VERIFIED
    version.verified_at, version.error, version.checking = timezone.now(), "", False
    version.save(update_fields=["status", "verified_at", "error", "checking"])
    audit(request, AuditEvent.Action.MODEL_VERIFY, user=by, obj=version, detail={"name": version.name, "ok": True, "files": len(actual)})
    return version


def model_version_activate(*, version: ModelVersion, by, request=None, rollback: bool = False) -> ModelVersion:
    """Make `version` the one model of its kind that serves; the one before it is retired."""
    with transaction.atomic():
        # Locking every row of the kind serialises two administrators activating at once.
        rows = ModelVersion.objects.select_for_update().filter(kind=version.kind)
        version = rows.get(pk=version.pk)
        if version.status == Status.ACTIVE:
            return version
        if not version.can_activate:
            raise RegistryError(
                f"{version.name} is {version.get_status_display().lower()}; only a verified model can be activated. Verify it first.")
        previous = rows.filter(status=Status.ACTIVE).first()
        if previous is not None:
            previous.status = Status.RETIRED
            previous.save(update_fields=["status"])
        version.status, version.activated_at = Status.ACTIVE, timezone.now()
        version.save(update_fields=["status", "activated_at"])
        action = AuditEvent.Action.MODEL_ROLLBACK if rollback else AuditEvent.Action.MODEL_ACTIVATE
        audit(request, action, user=by, obj=version, detail={
            "kind": version.kind, "name": version.name, "previous": previous.name if previous else None})
    return version


def model_version_rollback(*, kind: str, by, request=None) -> ModelVersion:
    """Activate again the model of `kind` that served most recently before the current one."""
    previous = (ModelVersion.objects.filter(kind=kind, status=Status.RETIRED, activated_at__isnull=False)
                .order_by("-activated_at").first())
    if previous is None:
        raise RegistryError(f"No earlier {_kind_label(kind)} model has served on this site; there is nothing to go back to.")
    return model_version_activate(version=previous, by=by, request=request, rollback=True)


def active_model(kind: str) -> ModelVersion | None:
    return ModelVersion.objects.filter(kind=kind, status=Status.ACTIVE).first()


def active_model_dir(kind: str) -> str:
    """The folder to load for `kind`: the active version's, else the one set in the environment (may be empty)."""
    from django.conf import settings

    version = active_model(kind)
    if version is not None:
        return version.path
    return settings.ASR_MODEL_DIR if kind == ModelVersion.Kind.ASR else settings.DIARIZATION_DIR

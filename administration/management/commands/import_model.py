"""Import a model weights folder from a local path: checksums, manifest, registry row."""
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from administration import registry
from administration.models import ModelVersion


class Command(BaseCommand):
    help = ("Register a Voxtral Realtime folder (transformers layout) or a pyannote pipeline folder: read every "
            "file, keep its SHA-256, write or check the folder's manifest. Activate it afterwards in the console "
            "or with --activate.")

    def add_arguments(self, parser):
        parser.add_argument("path", help="The model folder, e.g. /srv/models/voxtral-mini-4b-realtime")
        parser.add_argument("--kind", choices=[k.value for k in ModelVersion.Kind], help="Refuse the folder unless it is of this kind.")
        parser.add_argument("--name", default="", help="How the console names this version (default: the folder's name).")
        parser.add_argument("--activate", action="store_true", help="Verify it (unless its manifest already did) and make it the active model.")
        parser.add_argument("--user", default="", help="The administrator to record as importer (default: none).")

    def handle(self, *args, path, kind=None, name="", activate=False, user="", **options):
        by = get_user_model().objects.filter(username=user).first() if user else None
        if user and by is None:
            raise CommandError(f"No user is called {user!r}.")
        try:
            version = registry.model_version_register(path=path, kind=kind, name=name, by=by)
        except registry.RegistryError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Reading every file of {version.path} ...")
        version = registry.model_version_import(version=version, progress=self._progress)
        self.stdout.write("")
        if version.status == ModelVersion.Status.FAILED:
            raise CommandError(version.error)
        self.stdout.write(self.style.SUCCESS(
            f"Imported {version.name} ({version.get_kind_display()}): {len(version.files)} files, "
            f"{version.size_bytes / 1e9:.2f} GB, status {version.get_status_display().lower()}."))
        if activate:
            self._activate(version, by)
        elif version.status == ModelVersion.Status.IMPORTED:
            self.stdout.write("Next: verify it (console, Models page), then activate it.")

    def _activate(self, version, by):
        if version.status == ModelVersion.Status.IMPORTED:
            self.stdout.write("Verifying: reading every file again ...")
            version = registry.model_version_verify(version=registry.model_version_start_check(version=version), by=by, progress=self._progress)
            self.stdout.write("")
            if version.status == ModelVersion.Status.FAILED:
                raise CommandError(version.error)
        try:
            registry.model_version_activate(version=version, by=by)
        except registry.RegistryError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(f"{version.name} is now the active {version.get_kind_display()} model."))

    def _progress(self, done: int, total: int) -> None:
        self.stdout.write(f"\r  {100 * done // max(total, 1):3d}% of {total / 1e9:.2f} GB read", ending="")
        self.stdout.flush()

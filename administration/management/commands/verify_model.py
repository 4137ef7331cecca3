"""Read a registered model's folder again and compare every file with the checksums taken at import."""
from django.core.management.base import BaseCommand, CommandError

from administration import registry
from administration.models import ModelVersion


class Command(BaseCommand):
    help = "Verify a registered model version by name: every file is read and compared with its import checksum."

    def add_arguments(self, parser):
        parser.add_argument("name", help="The model version's name, as listed in the console.")

    def handle(self, *args, name, **options):
        version = ModelVersion.objects.filter(name=name).first()
        if version is None:
            raise CommandError(f"No model version is called {name!r}.")
        try:
            version = registry.model_version_verify(version=registry.model_version_start_check(version=version), progress=self._progress)
            self.stdout.write("")
        except registry.RegistryError as exc:
            raise CommandError(str(exc)) from None
        if version.error:
            raise CommandError(version.error)
        self.stdout.write(self.style.SUCCESS(f"{version.name}: all {len(version.files)} files match their import checksums."))

    def _progress(self, done: int, total: int) -> None:
        self.stdout.write(f"\r  {100 * done // max(total, 1):3d}% of {total / 1e9:.2f} GB read", ending="")
        self.stdout.flush()

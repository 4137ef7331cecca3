"""Make a verified model version the active one of its kind, or roll back to the one before."""
from django.core.management.base import BaseCommand, CommandError

from administration import registry
from administration.models import ModelVersion


class Command(BaseCommand):
    help = ("Activate a verified model version by name (engines switch within seconds; running meetings finish on "
            "the previous model), or --rollback KIND to go back to the version that served before.")

    def add_arguments(self, parser):
        parser.add_argument("name", nargs="?", help="The model version's name, as listed in the console.")
        parser.add_argument("--rollback", choices=[k.value for k in ModelVersion.Kind], metavar="KIND",
                            help="Go back to the previous model of this kind (asr or diarization).")

    def handle(self, *args, name=None, rollback=None, **options):
        if bool(name) == bool(rollback):
            raise CommandError("Give either a model version name or --rollback KIND.")
        try:
            if rollback:
                version = registry.model_version_rollback(kind=rollback, by=None)
            else:
                version = ModelVersion.objects.filter(name=name).first()
                if version is None:
                    raise CommandError(f"No model version is called {name!r}.")
                version = registry.model_version_activate(version=version, by=None)
        except registry.RegistryError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(f"{version.name} is now the active {version.get_kind_display()} model."))

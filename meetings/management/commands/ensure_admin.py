import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the first administrator account if there is none, and print its password once."

    def add_arguments(self, parser):
        parser.add_argument("--username", default=os.environ.get("SCRIBE_ADMIN_USERNAME", "admin"))

    def handle(self, *args, username, **options):
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            self.stdout.write("An administrator account already exists.")
            return
        password = os.environ.get("SCRIBE_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, password=password, email="")
        self.stdout.write(self.style.SUCCESS(f"Created administrator {username!r} with password: {password}"))
        self.stdout.write("Write it down now; it is not shown again. Change it after signing in.")

import secrets

from django.conf import settings
from django.core.management.base import BaseCommand

from accounts.services import demo_setup

DEMO_EMAIL = "demo@lumen.local"


class Command(BaseCommand):
    help = "Create the demo organisation and its owner (once), printing the login."

    def add_arguments(self, parser):
        parser.add_argument("--reset-password", action="store_true", help="Give the demo owner a new password.")

    def handle(self, *args, reset_password: bool = False, **options):
        password = secrets.token_urlsafe(12)
        org, user, created = demo_setup(email=DEMO_EMAIL, password=password, organization_name="Demo Clinic & Research")
        if reset_password and not created:
            user.set_password(password)
            user.save(update_fields=["password"])
        url = settings.SITE_URL.rstrip("/") + "/"
        bar = "=" * 64
        if created or reset_password:
            self.stdout.write(f"\n{bar}\n  Lumen Insight is starting at {url}\n"
                              f"  Demo organisation: {org.name}\n  E-mail:   {user.email}\n  Password: {password}\n"
                              f"  (shown once; ./dev demo-password prints a new one)\n{bar}\n")
        else:
            self.stdout.write(f"\n{bar}\n  Lumen Insight is starting at {url}\n  Demo login: {user.email} "
                              f"(password shown on first run; ./dev demo-password prints a new one)\n{bar}\n")

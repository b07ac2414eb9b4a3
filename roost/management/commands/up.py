from __future__ import annotations

import os
import secrets
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction

from devices import services
from devices.models import Membership, Role, Tenant
from roost.supervisor import Child, Supervisor, python_argv

DEFAULT_TENANT = "default"


class Command(BaseCommand):
    help = "Prepare the platform (migrate, PKI, first admin, default tenant) and run all of it in the foreground."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--bind", default=os.environ.get("ROOST_WEB_BIND", "127.0.0.1"),
                            help="Address the web server listens on (default 127.0.0.1, env ROOST_WEB_BIND).")
        parser.add_argument("--no-worker", action="store_true", help="Do not start the Celery worker and beat.")
        parser.add_argument("--no-broker", action="store_true", help="Do not start the MQTT broker.")
        parser.add_argument("--prepare-only", action="store_true", help="Prepare, then exit without serving.")

    def handle(self, *args: Any, **options: Any) -> None:
        self.prepare()
        if options["prepare_only"]:
            return
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        children = [
            Child("web", python_argv("-m", "daphne", "-b", options["bind"], "-p",
                                     str(settings.ROOST_WEB_PORT), "roost.asgi:application")),
        ]
        if not options["no_worker"]:
            children.append(Child("worker", python_argv("-m", "celery", "-A", "roost", "worker", "--beat",
                                                        "--loglevel", "INFO", "--pool", "threads", "--concurrency", "4")))
        if not options["no_broker"]:
            broker = ["runbroker"]
            if settings.ROOST_BROKER_SERVICE_PORT:
                broker += ["--service-port", str(settings.ROOST_BROKER_SERVICE_PORT)]
            children.append(Child("broker", python_argv(manage, *broker)))
        self.stdout.write(f"Roost web on http://{options['bind']}:{settings.ROOST_WEB_PORT}/ (Ctrl-C stops everything)")
        if not options["no_broker"] and settings.ROOST_BROKER_SERVICE_PORT:
            self.stdout.write(f"Service clients (API keys) on mqtts://{settings.ROOST_BROKER_BIND}:"
                              f"{settings.ROOST_BROKER_SERVICE_PORT}")
        code = Supervisor(children, self.stdout).run()
        if code:
            raise SystemExit(code)

    def prepare(self) -> None:
        settings.ROOST_DATA_DIR.mkdir(parents=True, exist_ok=True)
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        call_command("initpki")
        tenant = Tenant.objects.filter(slug=DEFAULT_TENANT).first()
        if tenant is None:
            tenant = services.create_tenant(DEFAULT_TENANT, "Default")
            self.stdout.write(f"created tenant {DEFAULT_TENANT}")
        self._ensure_admin(tenant)

    def _ensure_admin(self, tenant: Tenant) -> None:
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            return
        username = os.environ.get("ROOST_ADMIN_USER", "admin")
        password = os.environ.get("ROOST_ADMIN_PASSWORD", "")
        generated = not password
        if generated:
            password = secrets.token_urlsafe(15)
        with transaction.atomic():
            user = User.objects.create_superuser(username=username, email="", password=password)
            Membership.objects.create(user=user, tenant=tenant, role=Role.OWNER)
        if generated:
            # Printed once, to the terminal only; it is not stored anywhere in clear.
            self.stdout.write(self.style.SUCCESS(
                f"created admin user {username!r} with password {password} (shown once; change it in the admin)"
            ))
        else:
            self.stdout.write(f"created admin user {username!r} from ROOST_ADMIN_USER/ROOST_ADMIN_PASSWORD")


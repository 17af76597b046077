from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from cmdb.services import inventory_import, inventory_parse
from governance.core.errors import DomainError


class Command(BaseCommand):
    help = "Import CIs and relationships from CSV or JSON files, all or nothing; safe to repeat."

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", type=Path)
        parser.add_argument("--as", dest="username", required=True, help="The user the import is recorded as.")

    def handle(self, *args, files, username, **options):
        try:
            actor = get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user named {username!r}.") from None
        try:
            records = []
            for path in files:
                if not path.is_file():
                    raise CommandError(f"{path}: no such file.")
                records += inventory_parse(path.name, path.read_bytes())
            result = inventory_import(actor=actor, records=records)
        except DomainError as exc:
            for error in exc.as_errors():
                self.stderr.write(error["message"])
            raise CommandError(exc.message) from None
        self.stdout.write(
            f"CIs: {result.cis_created} created, {result.cis_updated} updated, {result.cis_unchanged} unchanged; "
            f"relationships: {result.relationships_created} created, {result.relationships_existing} existing."
        )

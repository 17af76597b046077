from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from cmdb.models import Environment
from cmdb.selectors import cis_named
from governance.access.services import api_token_create
from governance.core.errors import DomainError


class Command(BaseCommand):
    help = "Issue an API token for USERNAME; the token is printed alone on the last line, once."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="cli")
        parser.add_argument("--expires-days", type=int, default=None)
        parser.add_argument("--service", action="append", default=[], dest="services",
                            help="Scope the token to this service CI (repeat for more).")
        parser.add_argument("--environment", action="append", default=[], dest="environments",
                            help="Scope the token to this environment (repeat for more).")

    def handle(self, *args, username, name, expires_days, services, environments, **options):
        try:
            owner = get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user named {username!r}.") from None
        scoped_services, unknown = cis_named(services)
        scoped_environments = list(Environment.objects.filter(name__in=environments))
        unknown += sorted(set(environments) - {environment.name for environment in scoped_environments})
        if unknown:
            raise CommandError(f"No service or environment is named {unknown[0]!r}.")
        try:
            # An operator at the console acts for the owner, as if the owner had issued it.
            issued = api_token_create(actor=owner, owner=owner, name=name, expires_days=expires_days,
                                      services=scoped_services, environments=scoped_environments)
        except DomainError as exc:
            raise CommandError(f"{exc.field}: {exc.message}" if exc.field else exc.message) from None
        expiry = issued.token.expires_at.isoformat() if issued.token.expires_at else "never"
        self.stderr.write(f"Token {name!r} for {username} created; expires {expiry}. It is shown only once.")
        self.stdout.write(issued.secret)

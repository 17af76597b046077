import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction
from guardian.shortcuts import assign_perm

from cmdb import demo
from cmdb.models import Environment, Team
from cmdb.services import inventory_from_document, inventory_import
from governance.roles import Role

DEMO_PEOPLE = {  # username -> (full name, roles, team maintained through an object permission)
    "requester": ("Riya Patel", [Role.REQUESTER], "payments"),
    "cab_member": ("Carlos Mendes", [Role.CAB_MEMBER], None),
    "release_manager": ("Rachel Moore", [Role.RELEASE_MANAGER], None),
    "auditor": ("Anna Schmidt", [Role.AUDITOR], None),
    "admin": ("Adam Okafor", [Role.ADMIN], None),
}


class Command(BaseCommand):
    help = "Load the demo bank estate and one user per role (named after the role). Safe to run again."

    def add_arguments(self, parser):
        parser.add_argument("--password", help="Password for every demo user; one is generated if omitted.")

    def handle(self, *args, password, **options):
        password = password or secrets.token_urlsafe(12)
        with transaction.atomic():
            users = self._people(password)
            self._estate(actor=users["admin"])
        self.stdout.write(f"Demo users ({', '.join(DEMO_PEOPLE)}) have the password: {password}")

    def _people(self, password: str) -> dict:
        users = {}
        for username, (full_name, roles, _team) in DEMO_PEOPLE.items():
            first, last = full_name.split(" ", 1)
            user, _ = get_user_model().objects.update_or_create(
                username=username,
                defaults={"first_name": first, "last_name": last, "email": f"{username}@bank.example",
                          "is_staff": Role.ADMIN in roles, "is_superuser": Role.ADMIN in roles},
            )
            if not user.check_password(password):  # a rerun with the same password changes nothing
                user.set_password(password)
                user.save(update_fields=["password"])
            user.groups.set(Group.objects.filter(name__in=roles))
            users[username] = user
        return users

    def _estate(self, *, actor) -> None:
        teams = {}
        for name, slug in demo.TEAMS:
            teams[slug], _ = Team.objects.update_or_create(
                slug=slug, defaults={"name": name, "email": f"{slug}-team@bank.example"}
            )
        for name, position, is_production, region, team in demo.ENVIRONMENTS:
            Environment.objects.update_or_create(
                name=name, defaults={"position": position, "is_production": is_production, "region": region,
                                     "owner_team": teams[team]},
            )
        for username, (_, _, team_slug) in DEMO_PEOPLE.items():
            if team_slug:
                assign_perm("cmdb.manage_team_cis", get_user_model().objects.get(username=username), teams[team_slug])
        result = inventory_import(actor=actor, records=inventory_from_document("demo", demo.estate_document()))
        self.stdout.write(
            f"Estate: {result.cis_created} CIs created, {result.cis_updated} updated, "
            f"{result.cis_unchanged} unchanged; {result.relationships_created} relationships created, "
            f"{result.relationships_existing} existing."
        )

"""Small builders for test data; each takes only what the test cares about."""

import itertools

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from cmdb.models import ConfigurationItem, Environment, Relationship, Team

_seq = itertools.count(1)


def make_user(username: str | None = None, *roles: str, **fields):
    user = get_user_model().objects.create_user(
        username=username or f"user{next(_seq)}", password="pw-for-tests", **fields
    )
    if roles:
        user.groups.set(Group.objects.filter(name__in=roles))
    return user


def make_team(slug: str | None = None, **fields) -> Team:
    slug = slug or f"team-{next(_seq)}"
    return Team.objects.create(slug=slug, name=fields.pop("name", slug.title()), **fields)


def make_environment(name: str, position: int, **fields) -> Environment:
    return Environment.objects.create(name=name, position=position, **fields)


def make_ci(name: str | None = None, *, team: Team | None = None, **fields) -> ConfigurationItem:
    fields.setdefault("ci_type", "service")
    return ConfigurationItem.objects.create(
        name=name or f"ci-{next(_seq)}", owner_team=team or make_team(), **fields
    )


def link(source: ConfigurationItem, target: ConfigurationItem, rel_type: str = "depends_on") -> Relationship:
    return Relationship.objects.create(source=source, target=target, rel_type=rel_type)

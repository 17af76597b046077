"""Small builders for test data; each takes only what the test cares about."""

import hashlib
import itertools
from datetime import UTC, datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from cmdb.models import ConfigurationItem, Environment, Relationship, Team
from governance.audit.ledger import audit_seal
from governance.models import AuditCapture, AuditEvent
from governance.models.audit import ActorKind
from releases.models import Artifact

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


def at(day: int, hour: int = 10) -> datetime:
    """A fixed moment in March 2024, for events placed in time."""
    return datetime(2024, 3, day, hour, tzinfo=UTC)


def note(label: str, *, actor: str = "alice", action: str = "note", object_type: str = "test.thing",
         object_id: str = "", when: datetime | None = None) -> None:
    """Queue an event as the capture trigger or audit_record would, at a chosen time."""
    AuditCapture.objects.create(
        occurred_at=when or timezone.now(), actor_kind=ActorKind.USER, actor_name=actor, action=action,
        object_type=object_type, object_id=object_id or label, object_label=label,
    )


def sealed(**filters) -> list[AuditEvent]:
    """The ledger's events matching `filters`, oldest first, after sealing what was captured."""
    audit_seal()
    return list(AuditEvent.objects.filter(**filters).order_by("seq"))


def seq_of(label: str) -> int:
    audit_seal()
    return AuditEvent.objects.get(object_label=label).seq


def make_change(requester, *, cis=(), environment=None, change_type="normal", start_in_hours: float = 48,
                hours: float = 2, **fields):
    """A change ready to submit: CIs, environment, window and plans filled in unless given."""
    from datetime import timedelta

    from governance.models import ChangeRequest

    start = timezone.now() + timedelta(hours=start_in_hours)
    defaults = {"title": "Upgrade payments-api", "implementation_plan": "helm upgrade", "backout_plan": "helm rollback",
                "test_evidence": "CI run 4711 green", "planned_start": start,
                "planned_end": start + timedelta(hours=hours)}
    change = ChangeRequest.objects.create(requester=requester, change_type=change_type,
                                          environment=environment, **{**defaults, **fields})
    change.affected_cis.set(cis)
    return change


def make_template(name: str = "Rotate TLS certificates", *, ci_types=("service",), cis=(), environments=None,
                  max_risk_level: str = "critical", approved: bool = True, **fields):
    """A standard change template covering `ci_types` and `cis` in `environments` (every environment if not
    given), approved by someone other than its editor unless `approved` is False."""
    from governance.models import StandardChangeTemplate

    now = timezone.now()
    template = StandardChangeTemplate.objects.create(
        name=name, ci_types=list(ci_types), max_risk_level=max_risk_level, edited_by=make_user(), edited_at=now,
        approved_by=make_user() if approved else None, approved_at=now if approved else None, **fields)
    template.cis.set(cis)
    template.environments.set(Environment.objects.all() if environments is None else environments)
    return template


def make_artifact(service: ConfigurationItem, version: str, *, created_by, **fields):
    """A registered build of `service`; its digest is derived from the version unless given."""
    fields.setdefault("digest", "sha256:" + hashlib.sha256(f"{service.pk}:{version}".encode()).hexdigest())
    return Artifact.objects.create(service=service, version=version, created_by=created_by, **fields)

"""Standard change templates: their writes and approval, and whether a change fits the template it names.

A template is a pre-approved model of a change, so it is itself approved, version by version: any edit of what
it says or covers makes a new version that needs approving again, by someone other than its editor. A change is
standard only while it fits an approved template's scope; the change services ask `fit_refusal` at submission
(always) and at creation and edit (where the answer is already known).
"""

from collections.abc import Iterable
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from cmdb.choices import CIType
from cmdb.models import ConfigurationItem, Environment
from governance.changes.permissions import template_approval_refusal
from governance.core.actors import ActingUser
from governance.core.errors import Conflict, DomainError, Forbidden, InvalidInput
from governance.models.changes import RiskLevel, StandardChangeTemplate

TEMPLATE_FIELDS = ("name", "description", "implementation_plan", "backout_plan", "active", "ci_types",
                   "max_risk_level")
# Retiring a template or bringing it back changes nothing it says: every other edit makes a new version.
UNVERSIONED_FIELDS = ("active",)
RISK_ORDER = list(RiskLevel.values)  # low to critical
NAMED_CIS_SHOWN = 5


def standard_template_write_refusal(actor: ActingUser, *, creating: bool, fields: dict) -> DomainError | None:
    """Why `actor` may not write these fields of a template, if not; the model's own rules are its clean()'s."""
    if not actor.has_perm(f"governance.{'add' if creating else 'change'}_standardchangetemplate"):
        return Forbidden("Administrators write standard change templates.")
    unknown = sorted(set(fields) - set(TEMPLATE_FIELDS))
    if unknown:
        return InvalidInput(f"{unknown[0]} cannot be set here.", field=unknown[0])
    return None


def _checked(actor: ActingUser, *, creating: bool, fields: dict) -> None:
    refusal = standard_template_write_refusal(actor, creating=creating, fields=fields)
    if refusal is not None:
        raise refusal


def _validated(template: StandardChangeTemplate) -> None:
    try:
        template.full_clean(exclude=["edited_by", "approved_by"])
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise InvalidInput(messages[0], field=None if field == "__all__" else field) from None


def _new_version(template: StandardChangeTemplate, *, actor: ActingUser, now: datetime) -> None:
    template.edited_by, template.edited_at = actor, now
    template.approved_by = template.approved_at = None


def standard_template_create(*, actor: ActingUser, cis: Iterable[ConfigurationItem] = (),
                             environments: Iterable[Environment] = (), **fields) -> StandardChangeTemplate:
    """A new template, at version 1 and not yet approved."""
    _checked(actor, creating=True, fields=fields)
    with transaction.atomic():
        template = StandardChangeTemplate(**fields)
        _new_version(template, actor=actor, now=timezone.now())
        _validated(template)
        template.save()
        template.cis.set(cis)
        template.environments.set(environments)
    return template


def standard_template_update(*, actor: ActingUser, template: StandardChangeTemplate,
                             cis: Iterable[ConfigurationItem] | None = None,
                             environments: Iterable[Environment] | None = None, **fields) -> StandardChangeTemplate:
    """Edit a template. Anything changed but `active` makes a new version, whose approval is still to come;
    changes already approved from an earlier version keep it."""
    _checked(actor, creating=False, fields=fields)
    with transaction.atomic():
        # An approval and an edit of the same template take turns, so no approval lands on a version unseen.
        template = StandardChangeTemplate.objects.select_for_update(no_key=True).get(pk=template.pk)
        before = {name: getattr(template, name) for name in fields}
        for name, value in fields.items():
            setattr(template, name, value)
        _validated(template)
        changed = [name for name in fields
                   if name not in UNVERSIONED_FIELDS and getattr(template, name) != before[name]]
        if cis is not None:
            cis = list(cis)
            if {ci.pk for ci in cis} != set(template.cis.values_list("pk", flat=True)):
                changed.append("cis")
                template.cis.set(cis)
        if environments is not None:
            environments = list(environments)
            if {env.pk for env in environments} != set(template.environments.values_list("pk", flat=True)):
                changed.append("environments")
                template.environments.set(environments)
        if changed:
            template.version += 1
            _new_version(template, actor=actor, now=timezone.now())
        template.save()
    return template


def standard_template_approve(*, actor: ActingUser, template: StandardChangeTemplate) -> StandardChangeTemplate:
    """Approve the template's current version, which must declare what it covers."""
    with transaction.atomic():
        template = StandardChangeTemplate.objects.select_for_update(no_key=True).get(pk=template.pk)
        refusal = template_approval_refusal(actor, template)
        if refusal:
            raise Forbidden(refusal, code="segregation_of_duties" if template.edited_by_id == actor.pk else None)
        if template.approved:
            raise Conflict(f"Version {template.version} of the template {template.name} is already approved.",
                           code="already_approved")
        if not template.ci_types and not template.cis.exists():
            raise InvalidInput("Say which CI types or CIs the template covers before approving it.",
                               field="ci_types")
        if not template.environments.exists():
            raise InvalidInput("Say which environments the template may be used in before approving it.",
                               field="environments")
        template.approved_by, template.approved_at = actor, timezone.now()
        template.save(update_fields=["approved_by", "approved_at"])
    return template


def fit_refusal(template: StandardChangeTemplate, *, cis: Iterable[ConfigurationItem],
                environment: Environment | None, risk_level: str = "") -> DomainError | None:
    """Why a change with these CIs, environment and risk cannot be a standard change from `template`, if it
    cannot: the template is retired or its current version unapproved, or the change is outside its scope."""
    if not template.active:
        return Conflict(f"The template {template.name} is retired.", field="template", code="template_retired")
    if not template.approved:
        return Conflict(f"Version {template.version} of the template {template.name} is not approved yet: a CAB "
                        "member or a release manager must approve it first.", field="template",
                        code="template_not_approved")
    named = dict(template.cis.values_list("pk", "name"))
    for ci in cis:
        if ci.ci_type not in template.ci_types and ci.pk not in named:
            label = CIType(ci.ci_type).label.lower()
            return Conflict(f"{ci.name} is {'an' if label[0] in 'aeiou' else 'a'} {label}; the template "
                            f"{template.name} allows {_scope_words(template, sorted(named.values()))} only.",
                            field="affected_cis", code="outside_template_scope")
    if environment is not None:
        allowed = dict(template.environments.values_list("pk", "name"))
        if environment.pk not in allowed:
            names = ", ".join(sorted(allowed.values())) or "no environment"
            return Conflict(f"The template {template.name} is for {names} only, not {environment.name}.",
                            field="environment", code="outside_template_scope")
    if risk_level and RISK_ORDER.index(risk_level) > RISK_ORDER.index(template.max_risk_level):
        return Conflict(f"This change's risk is {risk_level}; the template {template.name} allows "
                        f"{template.max_risk_level} risk at most: raise it as a normal change.", field="risk_level",
                        code="outside_template_scope")
    return None


def _scope_words(template: StandardChangeTemplate, ci_names: list[str]) -> str:
    kinds = [_plural(CIType(value).label.lower()) for value in template.ci_types]
    if ci_names:
        shown = ", ".join(ci_names[:NAMED_CIS_SHOWN])
        more = len(ci_names) - NAMED_CIS_SHOWN
        kinds.append(f"{shown}{f' and {more} more' if more > 0 else ''}")
    return " and ".join(kinds) or "no CI"


def _plural(noun: str) -> str:
    return noun if noun == "storage" else f"{noun}s"

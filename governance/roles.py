"""The roles people hold: each is a Django group, created by a data migration with its permissions."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import models

from governance.core.serializers import LookupField


class Role(models.TextChoices):
    REQUESTER = "requester", "Requester"
    CAB_MEMBER = "cab_member", "CAB member"
    RELEASE_MANAGER = "release_manager", "Release manager"
    AUDITOR = "auditor", "Auditor"
    ADMIN = "admin", "Administrator"
    SERVICE_ACCOUNT = "service_account", "Service account"
    SRE = "sre", "Site reliability engineer"
    BUSINESS_OWNER = "business_owner", "Business owner"
    COMPLIANCE_OFFICER = "compliance_officer", "Compliance officer"
    INCIDENT_COMMANDER = "incident_commander", "Incident commander"


# Roles whose holders approve changes; each may also be held for one team only (see team_role_permission).
APPROVER_ROLES = (Role.CAB_MEMBER, Role.SRE, Role.BUSINESS_OWNER, Role.COMPLIANCE_OFFICER)


# Roles whose holders never carry out a change: auditors read everything and change nothing, and service accounts
# are pipelines, not people. Anyone else active may be named a change's implementer.
NON_IMPLEMENTER_ROLES = (Role.AUDITOR, Role.SERVICE_ACCOUNT)


def implementers() -> models.QuerySet:
    """The people a change may name as its implementer, by user name: what the change form offers."""
    return (
        get_user_model()
        .objects.filter(is_active=True)
        .exclude(groups__name__in=NON_IMPLEMENTER_ROLES)
        .order_by("username")
    )


def implementer_refusal(user) -> str | None:
    """Why `user` may not implement a change, if not (None for no implementer)."""
    if user is None:
        return None
    name = user.get_full_name() or user.get_username()
    if not user.is_active:
        return f"{name} is not an active user: name who carries the change out."
    held = user.groups.filter(name__in=NON_IMPLEMENTER_ROLES).values_list("name", flat=True).first()
    if held is not None:
        return (
            f"{name} is {'an' if held == Role.AUDITOR else 'a'} {Role(held).label.lower()} and cannot implement "
            "a change: name the person who carries it out."
        )
    return None


def team_role_permission(role: str) -> str:
    """The django-guardian permission, on a cmdb Team, that makes a person hold `role` for that team."""
    return f"cmdb.{team_role_codename(role)}"


def team_role_codename(role: str) -> str:
    return f"approve_as_{role}"


def grant_role_permissions(apps, role_permissions: dict[str, list[str]]) -> None:
    """For data migrations: give each role group (created if missing) its "app_label.codename" permissions."""
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after all migrations; create them now so groups can hold them.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, names in role_permissions.items():
        group, _ = Group.objects.get_or_create(name=role)
        for name in names:
            app_label, codename = name.split(".")
            group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))


class ApproverRoleField(LookupField):
    """One of the approver roles, by group name."""

    default_error_messages = {
        "not_approver": "{value} is not an approver role: use one of {roles}.",
    }

    def __init__(self, **kwargs):
        super().__init__(slug_field="name", queryset=Group.objects.filter(name__in=APPROVER_ROLES), **kwargs)

    def to_internal_value(self, data):
        if str(data) not in APPROVER_ROLES:
            self.fail("not_approver", value=str(data)[:50], roles=", ".join(APPROVER_ROLES))
        return super().to_internal_value(data)


def team_role_grants(user) -> list[tuple[int, str]]:
    """(team id, approver role) of each team role `user` holds, granted to them or to one of their groups."""
    from guardian.models import GroupObjectPermission, UserObjectPermission

    codenames = {team_role_codename(role): role for role in APPROVER_ROLES}
    on_teams = {"permission__codename__in": codenames, "content_type__app_label": "cmdb",
                "content_type__model": "team"}
    granted = [*UserObjectPermission.objects.filter(user=user, **on_teams).values_list("object_pk",
                                                                                       "permission__codename"),
               *GroupObjectPermission.objects.filter(group__user=user, **on_teams).values_list("object_pk",
                                                                                               "permission__codename")]
    return sorted({(int(team_id), codenames[codename]) for team_id, codename in granted})


def holds_team_role(user) -> bool:
    return bool(team_role_grants(user))

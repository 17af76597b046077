"""Who may read and change the CMDB: role permissions globally, or per team through django-guardian."""

from cmdb.models import ConfigurationItem, Relationship, Team


def can_view_cmdb(user) -> bool:
    return user.is_authenticated and user.has_perm("cmdb.view_configurationitem")


def can_manage_team_cis(user, team: Team | None) -> bool:
    return team is not None and user.is_authenticated and user.has_perm("cmdb.manage_team_cis", team)


def can_add_ci(user, team: Team | None) -> bool:
    return user.has_perm("cmdb.add_configurationitem") or can_manage_team_cis(user, team)


def can_change_ci(user, ci: ConfigurationItem) -> bool:
    return user.has_perm("cmdb.change_configurationitem") or can_manage_team_cis(user, ci.owner_team)


def can_delete_ci(user, ci: ConfigurationItem) -> bool:
    if ci.compliance_controlled and not can_change_ci_compliance(user):
        return False  # deleting and adding it again would shed its flags
    return user.has_perm("cmdb.delete_configurationitem") or can_manage_team_cis(user, ci.owner_team)


def can_change_ci_compliance(user) -> bool:
    """Compliance officers and admins: the flags and tier decide which approvals a change needs."""
    return user.is_authenticated and user.has_perm("cmdb.change_ci_compliance")


def can_add_relationship(user, source: ConfigurationItem) -> bool:
    """A relationship belongs to its source CI: whoever may change that CI may add edges from it."""
    return user.has_perm("cmdb.add_relationship") or can_manage_team_cis(user, source.owner_team)


def can_change_relationship(user, relationship: Relationship) -> bool:
    """A relationship belongs to its source CI: whoever may change that CI may change its edges."""
    return user.has_perm("cmdb.change_relationship") or can_manage_team_cis(user, relationship.source.owner_team)


def can_import(user) -> bool:
    return user.has_perms(
        ["cmdb.add_configurationitem", "cmdb.change_configurationitem", "cmdb.add_relationship"]
    )

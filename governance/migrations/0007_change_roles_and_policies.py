"""Approver roles (globally, or per team through an object permission on the team), what each role may do
with changes, and the default approval policies an administrator can then tune."""

from django.db import migrations

from governance.roles import grant_role_permissions

APPROVERS = {"cab_member": "CAB member", "sre": "site reliability engineer", "business_owner": "business owner",
             "compliance_officer": "compliance officer"}
CHANGE_MODELS = ["changerequest", "approval", "approvalpolicy", "policyrequirement", "cabmeeting",
                 "cabagendaitem", "standardchangetemplate", "changestatuschange", "approvalrequirement"]
VIEW_CHANGES = [f"governance.view_{m}" for m in CHANGE_MODELS]
ROLE_PERMISSIONS = {
    "requester": [*VIEW_CHANGES, "governance.add_changerequest"],
    "cab_member": VIEW_CHANGES,
    "sre": [*VIEW_CHANGES, "cmdb.view_configurationitem", "cmdb.view_team", "cmdb.view_environment",
            "cmdb.view_relationship"],
    "business_owner": [*VIEW_CHANGES, "cmdb.view_configurationitem", "cmdb.view_team", "cmdb.view_environment",
                       "cmdb.view_relationship"],
    "compliance_officer": [*VIEW_CHANGES, "cmdb.view_configurationitem", "cmdb.view_team",
                           "cmdb.view_environment", "cmdb.view_relationship"],
    "release_manager": [*VIEW_CHANGES, "governance.add_changerequest", "governance.manage_changes",
                        "governance.add_cabmeeting", "governance.change_cabmeeting"],
    "auditor": VIEW_CHANGES,
    "admin": [*VIEW_CHANGES, "governance.add_changerequest", "governance.manage_changes",
              *(f"governance.{a}_{m}" for m in ("approvalpolicy", "policyrequirement", "standardchangetemplate",
                                                "cabmeeting") for a in ("add", "change", "delete"))],
    "service_account": VIEW_CHANGES,
}
DEFAULT_POLICIES = [  # name, description, conditions, requirements
    ("Normal changes: CAB review", "Every normal change is reviewed by the CAB.",
     {"change_types": ["normal"]}, {"cab_member": 1}),
    ("High risk in production", "Risky production changes need an SRE and the business owner.",
     {"risk_levels": ["high", "critical"], "production_only": True, "change_types": ["normal"]},
     {"sre": 1, "business_owner": 1}),
    ("SOX scoped systems", "Changes to SOX-scoped CIs need a compliance officer.",
     {"sox_scoped": True, "change_types": ["normal"]}, {"compliance_officer": 1}),
    ("Emergency CAB", "Emergency changes need one CAB member now and a retrospective review later.",
     {"change_types": ["emergency"]}, {"cab_member": 1}),
]


def forward(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    team_type, _ = ContentType.objects.get_or_create(app_label="cmdb", model="team")
    for role, label in APPROVERS.items():
        Permission.objects.get_or_create(codename=f"approve_as_{role}", content_type=team_type,
                                         defaults={"name": f"Approves changes as {label} for this team"})
    grant_role_permissions(apps, ROLE_PERMISSIONS)
    Group = apps.get_model("auth", "Group")
    ApprovalPolicy = apps.get_model("governance", "ApprovalPolicy")
    PolicyRequirement = apps.get_model("governance", "PolicyRequirement")
    for name, description, conditions, requirements in DEFAULT_POLICIES:
        policy, created = ApprovalPolicy.objects.get_or_create(name=name, defaults={
            "description": description, **conditions})
        if created:
            for role, count in requirements.items():
                PolicyRequirement.objects.create(policy=policy, role=Group.objects.get(name=role), count=count)


class Migration(migrations.Migration):
    dependencies = [("governance", "0006_change_requests"), ("cmdb", "0002_relationship_messages")]
    operations = [migrations.RunPython(forward, migrations.RunPython.noop)]

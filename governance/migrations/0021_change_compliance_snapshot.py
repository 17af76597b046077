"""A change keeps the compliance flags and tiers of its CIs as they were when it was submitted, so lowering them
later does not thin its approvals; compliance officers and admins are the ones who change those flags."""

from django.db import migrations, models

from governance.roles import grant_role_permissions

ROLE_PERMISSIONS = {"compliance_officer": ["cmdb.change_ci_compliance"], "admin": ["cmdb.change_ci_compliance"]}


class Migration(migrations.Migration):

    dependencies = [
        ('governance', '0020_ledger_guards'),
        ('cmdb', '0003_ci_compliance'),
    ]

    operations = [
        migrations.AddField(
            model_name='changerequest',
            name='compliance_at_submission',
            field=models.JSONField(blank=True, default=dict, help_text='Each CI\'s compliance flags and tier when the change was submitted: {"<ci id>": {"sox_scoped": ..., "pci": ..., "phi": ..., "criticality": ...}}.'),
        ),
        migrations.RunPython(lambda apps, editor: grant_role_permissions(apps, ROLE_PERMISSIONS),
                             migrations.RunPython.noop),
    ]

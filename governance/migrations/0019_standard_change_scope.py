"""Standard change templates declare their scope (CI types or CIs, environments, a maximum risk) and are
themselves approved, version by version; a change records the template version that approved it.

A template that existed before comes out unapproved and with an empty scope, which fits nothing: it was a
blank cheque, and stays unusable until someone declares what it is for and a CAB member or release manager
approves it (seed_demo does that for the demo template)."""

import django.contrib.postgres.fields
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from governance.roles import grant_role_permissions

APPROVE_TEMPLATES = "governance.approve_standardchangetemplate"


def forward(apps, schema_editor):
    # Release managers are the change managers here; with the CAB they approve standard change models.
    grant_role_permissions(apps, {"cab_member": [APPROVE_TEMPLATES], "release_manager": [APPROVE_TEMPLATES],
                                  "admin": [APPROVE_TEMPLATES]})
    ChangeRequest = apps.get_model("governance", "ChangeRequest")
    # Changes approved from a template before versions were kept were approved by its first version.
    ChangeRequest.objects.filter(template__isnull=False, approved_at__isnull=False,
                                 template_version__isnull=True).update(template_version=1)


class Migration(migrations.Migration):

    dependencies = [
        ('governance', '0018_github_deployment'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='standardchangetemplate',
            options={'ordering': ['name'],
                     'permissions': [('approve_standardchangetemplate', 'Can approve a standard change template')]},
        ),
        migrations.AddField(
            model_name='changerequest',
            name='template_version',
            field=models.PositiveIntegerField(blank=True, editable=False, null=True,
                                              help_text='The version of the template that approved it.'),
        ),
        migrations.AddField(
            model_name='standardchangetemplate',
            name='ci_types',
            field=django.contrib.postgres.fields.ArrayField(base_field=models.CharField(choices=[('service', 'Service'), ('application', 'Application'), ('database', 'Database'), ('host', 'Host'), ('cluster', 'Cluster'), ('queue', 'Queue'), ('network', 'Network'), ('storage', 'Storage')], max_length=20), blank=True, default=list, help_text='Affected CIs of these types fit.', size=None, verbose_name='CI types'),
        ),
        migrations.AddField(
            model_name='standardchangetemplate',
            name='cis',
            field=models.ManyToManyField(blank=True, help_text='These CIs fit whatever their type, e.g. the services it is for.', related_name='+', to='cmdb.configurationitem', verbose_name='CIs'),
        ),
        migrations.AddField(
            model_name='standardchangetemplate',
            name='environments',
            field=models.ManyToManyField(blank=True, help_text='The environments it may be used in.', related_name='+', to='cmdb.environment'),
        ),
        migrations.AddField(
            model_name='standardchangetemplate',
            name='max_risk_level',
            field=models.CharField(choices=[('low', 'Low'), ('medium', 'Medium'), ('high', 'High'), ('critical', 'Critical')], default='low', help_text='A riskier change is not standard.', max_length=20, verbose_name='maximum risk'),
        ),
        migrations.AddField(
            model_name='standardchangetemplate',
            name='version',
            field=models.PositiveIntegerField(default=1),
        ),
        migrations.AddField(
            model_name='standardchangetemplate',
            name='edited_by',
            field=models.ForeignKey(blank=True, help_text='Who made this version; they cannot approve it.', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='standardchangetemplate',
            name='edited_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='standardchangetemplate',
            name='approved_by',
            field=models.ForeignKey(blank=True, help_text='Who approved this version.', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='standardchangetemplate',
            name='approved_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddConstraint(
            model_name='standardchangetemplate',
            constraint=models.CheckConstraint(condition=models.Q(('max_risk_level__in', ['low', 'medium', 'high', 'critical'])), name='template_max_risk_known'),
        ),
        migrations.AddConstraint(
            model_name='standardchangetemplate',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('approved_at__isnull', True), ('approved_by__isnull', True)), models.Q(('approved_at__isnull', False), ('approved_by__isnull', False)), _connector='OR'), name='template_approval_has_approver_and_time'),
        ),
        migrations.AddConstraint(
            model_name='standardchangetemplate',
            constraint=models.CheckConstraint(condition=models.Q(('approved_by', models.F('edited_by')), _negated=True), name='template_not_approved_by_its_editor'),
        ),
        migrations.RunPython(forward, migrations.RunPython.noop),
    ]

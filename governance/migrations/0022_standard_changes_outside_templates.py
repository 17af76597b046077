"""Standard changes approved before templates had a scope were approved by a template that now approves
nothing: those not yet under way go back to draft, to be raised again from an approved template or as normal
changes. The snapshot on a change also keeps its CIs' tags."""

from django.db import migrations, models
from django.utils import timezone

WAITING = ("approved", "scheduled")
REASON = ("its standard change template is not approved for what it covers: raise it again from an approved "
          "template or as a normal change")


def unapprove(apps, schema_editor):
    ChangeRequest = apps.get_model("governance", "ChangeRequest")
    ChangeStatusChange = apps.get_model("governance", "ChangeStatusChange")
    now = timezone.now()
    stranded = ChangeRequest.objects.filter(change_type="standard", status__in=WAITING,
                                            template__approved_at__isnull=True)
    for change in stranded:
        ChangeStatusChange.objects.create(change=change, from_status=change.status, to_status="draft",
                                          reason=REASON, at=now)
        change.status, change.revision, change.template_version = "draft", change.revision + 1, None
        change.save(update_fields=["status", "revision", "template_version"])


class Migration(migrations.Migration):

    dependencies = [
        ('governance', '0021_change_compliance_snapshot'),
    ]

    operations = [
        migrations.AlterField(
            model_name='changerequest',
            name='compliance_at_submission',
            field=models.JSONField(blank=True, default=dict, help_text='The strictest compliance flags, tier and tags of each CI since the change was submitted: {"<ci id>": {"sox_scoped": ..., "pci": ..., "phi": ..., "criticality": ..., "tags": [...]}}.'),
        ),
        migrations.RunPython(unapprove, migrations.RunPython.noop),
    ]

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('governance', '0019_standard_change_scope'),
    ]

    operations = [
    ]

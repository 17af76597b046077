from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('governance', '0020_ledger_guards'),
    ]

    operations = [
    ]

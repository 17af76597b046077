from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('governance', '0018_github_deployment'),
    ]

    operations = [
    ]

"""The Celery app shared by every worker and beat process."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "governance.settings")

app = Celery("changeboard")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Governance is one Django app in areas: each area's tasks module is found here.
app.autodiscover_tasks(["governance.access", "governance.audit", "governance.calendar", "governance.changes",
                        "governance.gate", "governance.deployments", "governance.evidence", "governance.itsm"])

"""A world in which every list of the API has rows and the values a schema most often gets wrong occur: a draft
with no environment, implementer, template or risk level; a move Changeboard made itself; an unsigned build; a
freeze in force with no extra approver; a lockdown in force and one lifted; a calendar feed for no team; a queued
deployment by a plan, not yet started."""

from datetime import timedelta

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.utils import timezone

from governance.audit.ledger import audit_checkpoint_create, audit_seal
from governance.calendar.services import (
    calendar_feed_create,
    lockdown_declare,
    lockdown_lift,
    window_occurrences_refresh,
)
from governance.changes.services import approval_record, change_request_transition
from governance.models import ChangeStatus, ChangeStatusChange
from governance.models.calendar import FreezeWindow, MaintenanceWindow
from governance.models.itsm import Incident, IncidentSuspect
from governance.roles import Role
from releases import engine
from releases.models import Deployment, DeploymentKind, DeploymentPlan, PlanWave, Promotion, ScanResult
from releases.services import trusted_key_add
from tests.factories import (
    link,
    make_artifact,
    make_change,
    make_ci,
    make_environment,
    make_team,
    make_template,
    make_user,
)


def build_api_world(admin) -> dict:
    """The rows, made by `admin` where a service asks who acts; returns those the tests name."""
    team = make_team("payments", name="Payments")
    dev = make_environment("dev", 0)
    prod = make_environment("prod", 1, is_production=True)
    service = make_ci("payments-api", team=team, environment=prod, criticality=2)
    database = make_ci("payments-db", team=team, ci_type="database", environment=prod, tags=["pci"])
    link(service, database)
    requester = make_user("rita", Role.REQUESTER)
    pipeline = make_user("build-bot", Role.SERVICE_ACCOUNT)

    template = make_template(cis=[service], approved=False)  # awaiting its approval: approved_by is null
    draft = make_change(requester, title="Tune the connection pool")
    approved = make_change(requester, cis=[service], environment=prod)
    change_request_transition(actor=requester, change=approved, target=ChangeStatus.SUBMITTED)
    approval_record(actor=make_user("carl", Role.CAB_MEMBER), change=approved, decision="approve", comment="ok")
    approved.refresh_from_db()
    ChangeStatusChange.objects.create(change=approved, from_status=ChangeStatus.APPROVED,
                                      to_status=ChangeStatus.APPROVED, actor=None, reason="re-read by Changeboard")

    private = Ed25519PrivateKey.generate()
    pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    trusted_key_add(actor=admin, team=team, name="ci", public_key_pem=pem)
    unsigned = make_artifact(service, "4.2.0", created_by=pipeline)
    Promotion.objects.create(artifact=unsigned, environment=dev, recorded_by=pipeline)
    ScanResult.objects.create(artifact=unsigned, kind="sast", tool="semgrep", verdict="pass", recorded_by=pipeline)

    today = timezone.now().date()
    freeze = FreezeWindow.objects.create(name="Dev freeze", severity="hard", reason="Load test",
                                         start_date=today - timedelta(days=1), duration_minutes=3 * 24 * 60)
    freeze.environments.set([dev])
    window = MaintenanceWindow.objects.create(name="Weekend", recurrence="rrule", rrule="FREQ=WEEKLY;BYDAY=SA",
                                              start_date=today, duration_minutes=240, everything=True)
    for each in (freeze, window):
        window_occurrences_refresh(each)
    in_force = lockdown_declare(actor=admin, reason="Incident 42", environments=[dev])
    lifted = lockdown_declare(actor=admin, reason="Incident 41", environments=[dev])
    lockdown_lift(actor=admin, lockdown=lifted, reason="Resolved")
    feed = calendar_feed_create(actor=admin, name="Everything").feed

    # A plan of two waves, the second behind a manual gate, and a deployment by it waiting in the queue.
    plan = DeploymentPlan.objects.create(service=service, environment=dev, executor_settings={
        "forward": ["true", "{targets}"], "backward": ["true", "{targets}"], "timeout_seconds": 30})
    PlanWave.objects.create(plan=plan, position=1, name="canary", targets=["payments-1"])
    PlanWave.objects.create(plan=plan, position=2, name="everywhere", targets=["payments-2", "payments-3"],
                            manual_gate=True, bake_seconds=60)
    deployment = Deployment.objects.create(kind=DeploymentKind.RUN, plan=plan, service=service, environment=dev,
                                           artifact=unsigned, change_number=approved.number,
                                           status="queued", reported_by=admin)
    deployment.refresh_from_db(fields=["number"])
    engine.steps_create(deployment)
    # An incident on the service, the deployment its suspect.
    incident = Incident.objects.create(source="servicenow", external_id="f" * 32, number="INC0000001",
                                       title="Payments fail", priority=1, opened_at=timezone.now())
    incident.affected_cis.set([service])
    IncidentSuspect.objects.create(incident=incident, deployment=deployment, change_number=approved.number, score=40,
                                   parts=[{"factor": "same CI", "detail": "payments-api", "points": 40}], rank=1)

    audit_seal()
    audit_checkpoint_create()
    return {"team": team, "dev": dev, "prod": prod, "service": service, "database": database, "draft": draft,
            "approved": approved, "artifact": unsigned, "freeze": freeze, "window": window, "lockdown": in_force,
            "lifted": lifted, "feed": feed, "requester": requester, "template": template, "plan": plan,
            "deployment": deployment, "incident": incident}

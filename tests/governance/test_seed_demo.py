"""The demo data: every page has real work, through the services, and a second run adds nothing."""

import io
import time
from datetime import time as wall_time
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from cmdb.models import ConfigurationItem, Relationship
from governance.audit.ledger import audit_seal, audit_verify
from governance.calendar.recurrence import business_days_of_month
from governance.calendar.selectors import inside_maintenance, maintenance_windows_for
from governance.changes.selectors import awaiting_approval_by, cab_queue, change_conflicts, retrospectives_overdue
from governance.changes.services import calendar_refusal
from governance.management.commands.seed_demo import DEMO_CHANGES, DEMO_PEOPLE
from governance.models import (
    ApiToken,
    Approval,
    ApprovalRequirement,
    CabAgendaItem,
    CabMeeting,
    ChangeRequest,
    ChangeStatusChange,
    FreezeWindow,
    MaintenanceWindow,
    Occurrence,
    StandardChangeTemplate,
)
from governance.models import ChangeStatus as S
from releases.demo import DEMO_BUILDS, GATE_CHANGE
from releases.models import Artifact, Promotion, ScanResult, TrustedKey

pytestmark = pytest.mark.django_db
PASSWORD = "demo-password-for-tests"
PIPELINE_TOKEN = "cbt_demo-pipeline-token-for-the-tests-0123456789"


def seed() -> float:
    started = time.monotonic()
    call_command("seed_demo", "--password", PASSWORD, "--pipeline-token", PIPELINE_TOKEN, stdout=io.StringIO())
    return time.monotonic() - started


def user(name):
    return get_user_model().objects.get(username=name)


def counts() -> dict[str, int]:
    models = [ChangeRequest, ChangeStatusChange, Approval, ApprovalRequirement, CabMeeting, CabAgendaItem,
              StandardChangeTemplate, ConfigurationItem, Relationship, get_user_model(), FreezeWindow,
              MaintenanceWindow, Occurrence, Artifact, ScanResult, Promotion, TrustedKey, ApiToken]
    return {model.__name__: model.objects.count() for model in models}


def test_the_demo_has_a_change_in_every_state_a_change_rests_in_and_a_second_run_adds_nothing():
    took = seed()
    assert took < 30, f"seed_demo took {took:.1f} s"
    present = set(ChangeRequest.objects.values_list("status", flat=True))
    # Submitting passes these two within one transaction: no change ever rests in them.
    assert present == set(S.values) - {S.SUBMITTED, S.ASSESSED}
    assert ChangeRequest.objects.count() == len(DEMO_CHANGES) + 1  # and the change the gate allows now
    before = counts()
    seed()
    assert counts() == before


def test_the_demo_gives_every_page_real_work_and_the_ledger_verifies():
    """Approvers with changes awaiting them, retrospectives due and overdue, a standard change, a CAB meeting."""
    seed()
    for role in ("cab_member", "sre", "business_owner"):
        waiting = ChangeRequest.objects.filter(awaiting_approval_by(user(role)))
        assert waiting.exists(), role
    assert not ChangeRequest.objects.filter(awaiting_approval_by(user("requester"))).exists()
    queue = list(cab_queue(user("cab_member")))
    mine = list(ChangeRequest.objects.filter(awaiting_approval_by(user("cab_member"))))
    assert len(mine) >= 3
    assert set(queue[:len(mine)]) == set(mine)  # awaiting them first
    assert all(c.awaits_me for c in queue[:len(mine)])
    partly = ChangeRequest.objects.get(title__startswith="Upgrade payments-api")
    assert Approval.objects.filter(change=partly, approver=user("compliance_officer")).exists()
    assert change_conflicts(partly).filter(title__startswith="Patch the routers").exists()
    audit_seal()
    report = audit_verify()
    assert report.ok, report.problem
    assert report.events > 0

    emergencies = ChangeRequest.objects.filter(change_type="emergency")
    assert emergencies.count() == 2
    assert all(c.approved_at and c.retrospective_due and not c.retrospective_done_at for c in emergencies)
    overdue = list(retrospectives_overdue())
    assert len(overdue) == 1
    assert overdue[0].retrospective_due < timezone.now()
    assert overdue[0].planned_end < timezone.now()
    standard = ChangeRequest.objects.get(change_type="standard")
    assert standard.template.name == "Rotate TLS certificates on an edge load balancer"
    assert standard.status == S.SCHEDULED
    assert standard.template_version == standard.template.version  # the demo template is approved, with a scope
    assert (standard.template.approved_by, standard.template.edited_by) == (user("release_manager"), user("admin"))
    assert not ApprovalRequirement.objects.filter(change=standard).exists()
    meeting = CabMeeting.objects.get()
    agenda = list(meeting.agenda.values_list("change__status", flat=True))
    assert agenda and set(agenda) == {S.CAB_REVIEW}
    assert len(agenda) == ChangeRequest.objects.filter(status=S.CAB_REVIEW).count()
    assert meeting.starts_at > timezone.now()
    finished = ChangeRequest.objects.filter(status__in=[S.COMPLETED, S.FAILED, S.ROLLED_BACK, S.CLOSED],
                                            change_type="normal")
    assert finished.exists()
    assert all(c.planned_end < timezone.now() - timedelta(days=1) for c in finished)

    for username, (_, roles, _) in DEMO_PEOPLE.items():
        person = authenticate(username=username, password=PASSWORD)
        assert person is not None, username
        assert set(person.groups.values_list("name", flat=True)) == set(roles)
    assert {"sre", "business_owner", "compliance_officer"} <= set(DEMO_PEOPLE)


def test_the_demo_has_a_banks_calendar_and_its_open_changes_sit_in_slots_it_allows():
    seed()
    freezes = {f.name: f for f in FreezeWindow.objects.prefetch_related("environments")}
    assert set(freezes) == {"Month-end close", "Quarter-end close", "Weekend production freeze",
                            "Christmas and New Year"}
    month_end, quarter_end = freezes["Month-end close"], freezes["Quarter-end close"]
    assert (month_end.recurrence, month_end.business_days, month_end.holiday_region, month_end.timezone,
            month_end.severity, month_end.sox_scoped) == ("last_bd_month", 3, "GB", "Europe/London", "hard", True)
    assert (quarter_end.recurrence, quarter_end.business_days, quarter_end.severity) == ("last_bd_quarter", 5, "hard")
    weekend = freezes["Weekend production freeze"]
    assert (weekend.rrule, weekend.start_time, weekend.duration_minutes, weekend.severity) == (
        "FREQ=WEEKLY;BYDAY=FR", wall_time(16), (2 * 24 + 14) * 60, "hard")
    christmas = freezes["Christmas and New Year"]
    assert (christmas.severity, christmas.extra_approval_role.name) == ("soft", "business_owner")
    assert all([e.name for e in f.environments.all()] == ["prod"] for f in freezes.values())
    nights = MaintenanceWindow.objects.get()
    assert (nights.name, nights.rrule, nights.start_time, nights.enforcement, nights.max_criticality) == (
        "Tier 1 production nights", "FREQ=WEEKLY;BYDAY=TU,TH", wall_time(22), "flag", 1)

    # Occurrences are stored, and the closes fall on the last business days of England's calendar.
    for window in [*freezes.values(), nights]:
        assert window.occurrences.filter(period__startswith__gt=timezone.now()).exists(), window.name
    london = ZoneInfo("Europe/London")
    assert month_end.occurrences.count() >= 14  # a month back, 400 days ahead
    for occurrence in month_end.occurrences.all():
        first = occurrence.period.lower.astimezone(london).date()
        assert business_days_of_month(first.year, first.month, "GB")[-3] == first
    quarters = {o.period.lower.astimezone(london).month for o in quarter_end.occurrences.all()}
    assert quarters <= {3, 6, 9, 12} and quarters

    # Every open change could be scheduled where it is; tier-1 production changes sit in their nights.
    now = timezone.now()
    open_changes = ChangeRequest.objects.filter(status__in=[S.SUBMITTED, S.ASSESSED, S.CAB_REVIEW, S.APPROVED,
                                                            S.SCHEDULED])
    assert open_changes.count() == 10
    for change in open_changes:
        assert calendar_refusal(change, target=S.SCHEDULED, now=now) is None, change.title
    upgrade = ChangeRequest.objects.get(title__startswith="Upgrade payments-api")
    windows = maintenance_windows_for(upgrade.change_type, list(upgrade.affected_cis.all()), upgrade.environment_id)
    assert windows == [nights]
    assert inside_maintenance(windows, upgrade.planned_start, upgrade.planned_end)


def test_the_demo_pipeline_gets_an_allow_for_the_gate_change_and_denials_for_the_rest():
    out = io.StringIO()
    call_command("seed_demo", "--password", PASSWORD, "--pipeline-token", PIPELINE_TOKEN, stdout=out)
    title, environment = GATE_CHANGE.title, GATE_CHANGE.environment
    service, version = GATE_CHANGE.build.service, GATE_CHANGE.build.version
    change = ChangeRequest.objects.get(title=title)
    digest = Artifact.objects.get(service__name=service, version=version).digest
    assert f"sh changeboard-gate {change.number} {service} {environment} {digest}" in out.getvalue()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {PIPELINE_TOKEN}")

    def ask(version: str, environment: str) -> list[str]:
        body = {"change": change.number, "service": service, "environment": environment,
                "artifact": Artifact.objects.get(service__name=service, version=version).digest}
        response = client.post("/api/v1/deployment-checks/", body, format="json")
        assert response.status_code == 200, response.content
        return [reason["code"] for reason in response.json()["reasons"]]

    assert ask(version, environment) == []
    assert ask("4.2.1", environment) == ["artifact_not_pinned", "artifact_not_promoted", "scan_failed"]
    assert {"change_not_for_environment", "artifact_not_promoted"} <= set(ask(version, "prod"))
    passed = {b.version: b.passed for b in DEMO_BUILDS if b.service == service}
    assert [p.environment.name for p in Promotion.objects.filter(artifact__digest=digest)] == passed[version]
    assert Artifact.objects.get(digest=digest).signature_status == "valid"
    assert authenticate(username="pipeline", password="") is None  # service accounts sign in by token only



def test_a_second_pipeline_token_under_the_demo_name_is_refused_not_added():
    call_command("seed_demo", "--password", PASSWORD, "--pipeline-token", PIPELINE_TOKEN, stdout=io.StringIO())
    with pytest.raises(CommandError, match="already has a token named"):
        call_command("seed_demo", "--password", PASSWORD, "--pipeline-token", PIPELINE_TOKEN + "-other",
                     stdout=io.StringIO())
    assert get_user_model().objects.get(username="pipeline").api_tokens.count() == 1

"""The world the sample and change-evidence tests run in: production changes to sample from, and one change with
everything an auditor looks at (a CAB approval through the services, gate checks, a pipeline's deployment and one
Changeboard ran wave by wave, scans of its builds), whose approvals and ledger events a test can multiply."""

import uuid
from datetime import timedelta

from django.contrib.auth.models import Group
from django.utils import timezone

from governance.changes.services import approval_record, change_request_transition
from governance.evidence.period import Period
from governance.evidence.population import PopulationRow
from governance.models import (
    Approval,
    ApprovalPolicy,
    ChangeRequest,
    ChangeStatus,
    DeploymentCheck,
    GateDecision,
    PolicyRequirement,
)
from governance.roles import Role
from releases.models import Deployment, DeploymentKind, DeploymentPlan, RolloutStep, ScanResult
from tests.factories import make_artifact, make_change, make_ci, make_environment, make_team, make_user


def row(change_number: str, risk_level: str = "low", change_type: str = "normal", *, deployment: str = "") -> \
        PopulationRow:
    """A population row of a deployment under `change_number` ("" for none); only what sampling reads varies."""
    now = timezone.now()
    return PopulationRow(
        deployment=deployment or f"DEP{uuid.uuid4().int % 10**7:07d}", kind="reported", service="payments-api",
        environment="prod", started_at=now, finished_at=now, status="succeeded", artifact_version="1.0.0",
        digest="sha256:" + "0" * 64, change_number=change_number, change_type=change_type if change_number else "",
        risk_level=risk_level if change_number else "", change_status="completed" if change_number else "",
        requester="rita", implementer="ivan", approvals=(), test_evidence="", approved_digests=(), check_id="")


def rows_by_stratum(sizes: dict[tuple[str, str], int]) -> list[PopulationRow]:
    """Rows of distinct changes, `sizes[(risk, type)]` of each stratum, numbered CHG0000001 on."""
    rows, number = [], 0
    for (risk, kind), count in sizes.items():
        for _ in range(count):
            number += 1
            rows.append(row(f"CHG{number:07d}", risk, kind))
    return rows


class SampleWorld:
    def __init__(self) -> None:
        self.now = timezone.now()
        for role in (Role.REQUESTER, Role.CAB_MEMBER, Role.SERVICE_ACCOUNT, Role.RELEASE_MANAGER):
            Group.objects.get_or_create(name=role)
        ApprovalPolicy.objects.update(active=False)
        policy = ApprovalPolicy.objects.create(name="Samples: one CAB member")
        PolicyRequirement.objects.create(policy=policy, role=Group.objects.get(name=Role.CAB_MEMBER), count=1)
        self.prod = make_environment("prod", 3, is_production=True)
        self.payments = make_ci("payments-api", team=make_team("payments"), sox_scoped=True)
        self.rita = make_user("rita", Role.REQUESTER, first_name="Rita", last_name="Requester")
        self.ivan = make_user("ivan", Role.REQUESTER)
        self.carl = make_user("carl", Role.CAB_MEMBER, first_name="Carl", last_name="Cab")
        self.rob = make_user("rob", Role.RELEASE_MANAGER)
        self.pipeline = make_user("ci-bot", Role.SERVICE_ACCOUNT)
        self._builds = 0

    def period(self) -> Period:
        return Period(start=self.now - timedelta(days=1), end=self.now + timedelta(days=1))

    def build(self):
        self._builds += 1
        return make_artifact(self.payments, f"2.0.{self._builds}", created_by=self.pipeline)

    def check(self, change, artifact, decision=GateDecision.ALLOW) -> DeploymentCheck:
        return DeploymentCheck.objects.create(
            change=change, service=self.payments, environment=self.prod, digest=artifact.digest, artifact=artifact,
            decision=decision, asked_by=self.pipeline, valid_until=timezone.now() + timedelta(minutes=15),
            reasons=[] if decision == GateDecision.ALLOW else [{"code": "not_approved", "message": "Not yet."}])

    def reported(self, change, **fields) -> Deployment:
        artifact = self.build()
        return Deployment.objects.create(
            kind=DeploymentKind.REPORTED, service=self.payments, environment=self.prod, artifact=artifact,
            change_number=change.number, check_id=self.check(change, artifact).pk, reported_by=self.pipeline,
            status="succeeded", finished_at=timezone.now(), **fields)

    def population(self, sizes: dict[tuple[str, str], int]) -> list[ChangeRequest]:
        """Changes deployed to production now, `sizes[(risk, type)]` of each stratum, one deployment each (two
        for every third, which must count once)."""
        changes = []
        for (risk, kind), count in sizes.items():
            for _ in range(count):
                change = make_change(self.rita, cis=[self.payments], environment=self.prod, change_type=kind,
                                     risk_level=risk)
                self.reported(change)
                if len(changes) % 3 == 0:
                    self.reported(change)
                changes.append(change)
        return changes

    def evidenced_change(self, *, approvals: int = 1, edits: int = 0, runs: int = 1) -> ChangeRequest:
        """A change approved by carl through the services, asked about at the gate (denied, then allowed),
        deployed by a pipeline and `runs` times by Changeboard; with `approvals` decisions in all and `edits`
        more ledger events of the change."""
        change = make_change(self.rita, cis=[self.payments], environment=self.prod, implementer=self.ivan,
                             title="Rotate the payments signing key", description="Yearly key rotation.",
                             test_evidence="Staging run 812: 214 tests green")
        change = change_request_transition(actor=self.rita, change=change, target=ChangeStatus.SUBMITTED)
        approval_record(actor=self.carl, change=change, decision="approve", comment="Looks safe.")
        for n in range(approvals - 1):
            Approval.objects.create(change=change, approver=make_user(f"cab{n}", Role.CAB_MEMBER),
                                    decision="approve", role=Group.objects.get(name=Role.CAB_MEMBER),
                                    revision=change.revision, comment=f"Also fine ({n}).")
        for n in range(edits):
            ChangeRequest.objects.filter(pk=change.pk).update(description=f"Yearly key rotation, edit {n}.")
        change.refresh_from_db()
        denied = self.build()
        self.check(change, denied, decision=GateDecision.DENY)
        deployed = self.reported(change)
        ScanResult.objects.create(artifact=deployed.artifact, kind="sast", tool="semgrep", verdict="pass",
                                  recorded_by=self.pipeline)
        plan, _ = DeploymentPlan.objects.get_or_create(service=self.payments, environment=self.prod)
        for _ in range(runs):
            run = Deployment.objects.create(kind=DeploymentKind.RUN, service=self.payments, environment=self.prod,
                                            artifact=self.build(), plan=plan, change_number=change.number,
                                            reported_by=self.rob, status="succeeded", finished_at=timezone.now())
            for sequence, kind in enumerate(("pre_check", "rollout", "smoke"), start=1):
                RolloutStep.objects.create(deployment=run, sequence=sequence, wave_position=1, wave_name="canary",
                                           kind=kind, targets=["eu-1"], state="succeeded",
                                           idempotency_key=f"{run.number}:{sequence}", started_at=timezone.now(),
                                           finished_at=timezone.now())
        return change

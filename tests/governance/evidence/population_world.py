"""A period holding one production deployment clean of exceptions for each way of deploying, and one exception of
every kind the auditor's workspace finds, each planted on a record of its own, plus one unpaired record on each side
of the reconciliation. Changes go through the real services (submit, CAB approval) where the rules let them; what
the rules would refuse (a requester's own approval, an approval for a role never held) is planted as the row a
bypass would leave."""

from datetime import timedelta

from django.contrib.auth.models import Group
from django.utils import timezone
from guardian.shortcuts import assign_perm

from governance.audit.ledger import audit_record, audit_seal
from governance.changes.services import approval_record, change_request_transition
from governance.evidence.period import Period
from governance.models import (
    Approval,
    ApprovalPolicy,
    ChangeRequest,
    ChangeStatus,
    DeploymentCheck,
    GateDecision,
    PolicyRequirement,
)
from governance.roles import Role, team_role_permission
from releases.models import Deployment, DeploymentKind, DeploymentPlan
from tests.factories import make_artifact, make_change, make_ci, make_environment, make_team, make_user

# Every exception the world plants, as its key's kind and the name of the record it is planted on.
EXPECTED = {
    ("no_approved_change", "no_change"), ("no_approved_change", "unapproved"),
    ("no_allowing_check", "denied_check"), ("approval_after_start", "early"), ("self_approval", "own_approval"),
    ("self_approval", "deployer_approved"), ("approval_role_not_held", "role_not_held"),
    ("emergency_review_missing", "emergency_missing"), ("emergency_review_late", "emergency_late"),
    ("outside_window", "outside"), ("freeze_override", "override"), ("digest_not_approved", "other_build"),
    ("no_test_evidence", "untested"), ("deployer_not_service_account", "by_a_person"),
    ("self_approval", "implementer_approval"), ("approval_role_not_held", "other_teams_role"),
}
# The records each kind is about: a deployment, or the change behind it.
ON_CHANGE = {"self_approval:own_approval", "self_approval:implementer_approval", "approval_role_not_held",
             "emergency_review_missing", "emergency_review_late", "no_test_evidence"}


class World:
    def __init__(self) -> None:
        self.now = timezone.now()
        self.deployments: dict[str, Deployment] = {}
        self.changes: dict[str, ChangeRequest] = {}
        for role in (Role.REQUESTER, Role.CAB_MEMBER, Role.SERVICE_ACCOUNT, Role.RELEASE_MANAGER, Role.AUDITOR):
            Group.objects.get_or_create(name=role)
        ApprovalPolicy.objects.update(active=False)
        policy = ApprovalPolicy.objects.create(name="Evidence: one CAB member")
        PolicyRequirement.objects.create(policy=policy, role=Group.objects.get(name=Role.CAB_MEMBER), count=1)
        self.team = team = make_team("payments")
        self.prod = make_environment("prod", 3, is_production=True)
        self.staging = make_environment("staging", 2)
        self.payments = make_ci("payments-api", team=team, sox_scoped=True)
        self.records = make_ci("records-api", team=team, phi=True)
        self.rita = make_user("rita", Role.REQUESTER)
        self.ivan = make_user("ivan", Role.REQUESTER)
        self.carl = make_user("carl", Role.CAB_MEMBER)
        self.cleo = make_user("cleo", Role.CAB_MEMBER)
        self.sam = make_user("sam", Role.REQUESTER, Role.CAB_MEMBER)
        self.rob = make_user("rob", Role.RELEASE_MANAGER, Role.CAB_MEMBER)
        self.tess = make_user("tess")
        self.pipeline = make_user("ci-bot", Role.SERVICE_ACCOUNT)
        self.auditor = make_user("audrey", Role.AUDITOR)
        self._builds = 0

    # Building blocks -----------------------------------------------------------------------------------------

    def change(self, name: str, *, approver=None, requester=None, service=None, **fields) -> ChangeRequest:
        """A change to production submitted and approved through the services (by `approver`, carl unless
        given), its window then opening an hour ago for three hours."""
        fields.setdefault("implementer", self.ivan)
        change = make_change(requester or self.rita, cis=[service or self.payments], environment=self.prod,
                             **fields)
        change = change_request_transition(actor=change.requester, change=change, target=ChangeStatus.SUBMITTED)
        if approver is not False and change.status == ChangeStatus.CAB_REVIEW:
            approval_record(actor=approver or self.carl, change=change, decision="approve")
        ChangeRequest.objects.filter(pk=change.pk).update(planned_start=self.now - timedelta(hours=1),
                                                          planned_end=self.now + timedelta(hours=3))
        change.refresh_from_db()
        self.changes[name] = change
        return change

    def build(self, service=None):
        self._builds += 1
        return make_artifact(service or self.payments, f"1.0.{self._builds}", created_by=self.pipeline)

    def check(self, artifact, *, decision=GateDecision.ALLOW, change=None, environment=None, asked_by=None):
        return DeploymentCheck.objects.create(
            change=change, service=artifact.service, environment=environment or self.prod, digest=artifact.digest,
            artifact=artifact, decision=decision, asked_by=asked_by or self.pipeline,
            valid_until=timezone.now() + timedelta(minutes=15))

    def reported(self, name: str, change: ChangeRequest | None, *, artifact=None, check=None, by=None,
                 environment=None, **fields) -> Deployment:
        """A deployment a pipeline reported under an allowing check (one of its own unless given)."""
        artifact = artifact or self.build()
        check = check or self.check(artifact, change=change, environment=environment)
        deployment = Deployment.objects.create(
            kind=DeploymentKind.REPORTED, service=artifact.service, environment=environment or self.prod,
            artifact=artifact, change_number=change.number if change else "", check_id=check.pk,
            reported_by=by or self.pipeline, status="succeeded", **fields)
        self.deployments[name] = deployment
        return deployment

    def run(self, name: str, change: ChangeRequest, *, by) -> Deployment:
        """A deployment Changeboard ran by a plan, started by `by`."""
        artifact = self.build()
        plan, _ = DeploymentPlan.objects.get_or_create(service=artifact.service, environment=self.prod)
        deployment = Deployment.objects.create(kind=DeploymentKind.RUN, service=artifact.service,
                                               environment=self.prod, artifact=artifact, plan=plan,
                                               change_number=change.number, reported_by=by, status="succeeded")
        self.deployments[name] = deployment
        return deployment

    def period(self, scope: str = "all") -> Period:
        return Period(start=self.now - timedelta(days=1), end=self.now + timedelta(days=1), scope=scope)

    def record_of(self, name: str, kind: str) -> str:
        """The DEP or CHG number an exception of `kind` planted on `name` is about."""
        if f"{kind}:{name}" in ON_CHANGE or kind in ON_CHANGE:
            return self.changes[name].number
        return self.deployments[name].number

    def expected_keys(self) -> set[str]:
        return {f"{kind}:{self.record_of(name, kind)}" for kind, name in EXPECTED}


def build_world() -> World:
    w = World()
    # Clean: a pipeline's deployment of an approved build; cleo approved and has left the CAB since, which the
    # ledger shows came after her approval.
    clean = w.change("clean", approver=w.cleo)
    build = w.build()
    ChangeRequest.objects.filter(pk=clean.pk).update(pinned_digests=[build.digest])
    w.reported("clean", clean, artifact=build)
    w.cleo.groups.remove(Group.objects.get(name=Role.CAB_MEMBER))
    # Clean: Changeboard ran it, started by a release manager who did not approve it.
    w.run("clean_run", w.change("clean_run"), by=make_user("rosa", Role.RELEASE_MANAGER))
    # Clean: a PHI service.
    w.reported("clean_phi", w.change("clean_phi", service=w.records), artifact=w.build(w.records))

    w.reported("no_change", None)
    w.reported("unapproved", w.change("unapproved", approver=False))
    denied = w.build()
    w.reported("denied_check", w.change("denied_check"), artifact=denied,
               check=w.check(denied, decision=GateDecision.DENY))
    early = w.change("early")
    w.reported("early", early, started_at=early.approved_at - timedelta(milliseconds=100))
    own = w.change("own_approval", requester=w.sam)
    Approval.objects.create(change=own, approver=w.sam, decision="approve", role=Group.objects.get(name="cab_member"),
                            revision=own.revision)
    w.reported("own_approval", own)
    w.run("deployer_approved", w.change("deployer_approved", approver=w.rob), by=w.rob)
    unheld = w.change("role_not_held")
    Approval.objects.create(change=unheld, approver=w.tess, decision="approve",
                            role=Group.objects.get(name=Role.CAB_MEMBER), revision=unheld.revision)
    w.reported("role_not_held", unheld)
    for name, done in (("emergency_missing", None), ("emergency_late", w.now - timedelta(minutes=10))):
        emergency = w.change(name, change_type="emergency")
        ChangeRequest.objects.filter(pk=emergency.pk).update(retrospective_due=w.now - timedelta(minutes=30),
                                                             retrospective_done_at=done)
        w.reported(name, emergency)
    w.reported("outside", w.change("outside"), started_at=w.now + timedelta(hours=5))
    override = w.change("override")
    audit_record("freeze_override", obj=override, context={"freezes": ["Year-end close"], "approved_by": "carl"})
    w.reported("override", override)
    other_build = w.change("other_build", pinned_digests=["sha256:" + "e" * 64])
    w.reported("other_build", other_build)
    untested = w.change("untested")
    ChangeRequest.objects.filter(pk=untested.pk).update(test_evidence="")
    w.reported("untested", untested)
    w.reported("by_a_person", w.change("by_a_person"), by=w.rita)
    # The implementer's own approval, planted beside a CAB member's.
    by_implementer = w.change("implementer_approval", implementer=w.carl, approver=w.rob)
    Approval.objects.create(change=by_implementer, approver=w.carl, decision="approve",
                            role=Group.objects.get(name=Role.CAB_MEMBER), revision=by_implementer.revision)
    w.reported("implementer_approval", by_implementer)
    # Team roles: clean when held for the team owning the change's CI, given to the person or to a group they are in;
    # an exception when held for another team only (the row a bypass of the services would leave).
    grant = team_role_permission(Role.CAB_MEMBER)
    tom = make_user("tom")
    assign_perm(grant, tom, w.team)
    w.reported("clean_team_grant", w.change("clean_team_grant", approver=tom))
    approvers = Group.objects.create(name="payments-approvers")
    assign_perm(grant, approvers, w.team)
    gina = make_user("gina")
    gina.groups.add(approvers)
    w.reported("clean_group_grant", w.change("clean_group_grant", approver=gina))
    olga = make_user("olga")
    assign_perm(grant, olga, make_team("search"))
    elsewhere = w.change("other_teams_role", approver=w.rob)
    Approval.objects.create(change=elsewhere, approver=olga, decision="approve",
                            role=Group.objects.get(name=Role.CAB_MEMBER), revision=elsewhere.revision)
    w.reported("other_teams_role", elsewhere)

    # Outside the population: a staging deployment with no change, and a production one before the period.
    w.reported("in_staging", None, environment=w.staging)
    w.reported("before", w.change("before"), started_at=w.now - timedelta(days=3))
    # Unpaired in the reconciliation: the gate let a build in and nothing came of it; a change was approved for the
    # period and nothing was deployed under it (plus the deployments no_change and denied_check above).
    w.idle_check = w.check(w.build())
    w.change("never_deployed")
    audit_seal()
    return w

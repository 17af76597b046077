import contextlib
import secrets
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from celery import Task
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from guardian.shortcuts import assign_perm

from cmdb import demo
from cmdb.models import ConfigurationItem, Environment, Team
from cmdb.services import inventory_from_document, inventory_import
from governance.access.services import api_token_create
from governance.calendar.selectors import freezes_covering
from governance.calendar.services import window_save
from governance.calendar.verdict import freeze_stops
from governance.changes import notifications
from governance.changes.scheduling import schedule_suggestions
from governance.changes.selectors import outstanding_approvals
from governance.changes.services import (
    approval_record,
    cab_meeting_create,
    calendar_refusal,
    change_request_create,
    change_request_transition,
    change_request_update,
)
from governance.changes.standard import standard_template_approve, standard_template_create, standard_template_update
from governance.core.actors import ActingUser
from governance.core.ed25519 import public_key_pem
from governance.core.errors import DomainError
from governance.core.secrets import secret_digest
from governance.deployments.plans import (
    CheckInput,
    PlanInput,
    WaveInput,
    deployment_plan_create,
    deployment_plan_update,
)
from governance.gate.services import change_for_deployment
from governance.models import (
    ApiToken,
    Approval,
    CabMeeting,
    ChangeRequest,
    ChangeStatusChange,
    FreezeWindow,
    MaintenanceWindow,
    RiskLevel,
    StandardChangeTemplate,
)
from governance.models import ChangeStatus as S
from governance.models.calendar import MaintenanceEnforcement, Recurrence, Severity
from governance.models.gate import DeploymentCheck, GateDecision
from governance.roles import Role
from releases import demo_fleet
from releases.demo import DEMO_BUILDS, GATE_CHANGE, ROLLOUT_CHANGE, ROLLOUT_LIVE, GateChange
from releases.models import (
    Artifact,
    CheckPhase,
    Deployment,
    DeploymentPlan,
    DeploymentStatus,
    ExecutorKind,
    TrustedKey,
)
from releases.selectors import live_artifact
from releases.services import artifact_promote, artifact_register, scan_attach, trusted_key_add

DEMO_PEOPLE = {  # username -> (full name, roles, team maintained through an object permission)
    "requester": ("Riya Patel", [Role.REQUESTER], "payments"),
    "cab_member": ("Carlos Mendes", [Role.CAB_MEMBER], None),
    "sre": ("Sam Okoro", [Role.SRE], None),
    "business_owner": ("Bea Lindqvist", [Role.BUSINESS_OWNER], None),
    "compliance_officer": ("Claire Dubois", [Role.COMPLIANCE_OFFICER], None),
    "release_manager": ("Rachel Moore", [Role.RELEASE_MANAGER], None),
    "auditor": ("Anna Schmidt", [Role.AUDITOR], None),
    "admin": ("Adam Okafor", [Role.ADMIN], None),
}

SERVICE_ACCOUNTS = {"pipeline": "CI/CD pipelines", "github": "GitHub App"}  # username -> what signs in as it
PIPELINE_TOKEN_NAME = "demo pipeline"  # noqa: S105 (a token's name)

TLS_TEMPLATE = "Rotate TLS certificates on an edge load balancer"
TLS_TEMPLATE_TEXT: dict[str, Any] = {
    "description": "Replace a certificate before it expires, with the same names and key size.",
    "implementation_plan": "Upload the new certificate, switch the listener to it, check the chain.",
    "backout_plan": "Switch the listener back to the previous certificate.",
    # An edge load balancer in production is tier 1 with services behind it: high risk, by the numbers.
    "max_risk_level": RiskLevel.HIGH,
}
CAB_MEETING = "Weekly CAB"

# A bank's release calendar, by name: (model, its fields, its scope). Times are London wall-clock times; the
# business-day closes skip English bank holidays ("GB"). A second run finds each by name and changes nothing.
LONDON = "Europe/London"
CLOSE = {"timezone": LONDON, "holiday_region": "GB", "start_date": date(2024, 1, 1), "start_time": time(0),
         "duration_minutes": 24 * 60}  # a business-day window runs from its first day to the end of its last
DEMO_CALENDAR: list[tuple[type[FreezeWindow | MaintenanceWindow], str, dict[str, Any], dict[str, Any]]] = [
    (FreezeWindow, "Month-end close", {
        **CLOSE, "recurrence": Recurrence.LAST_BUSINESS_DAYS_OF_MONTH, "business_days": 3,
        "severity": Severity.HARD, "reason": "Finance closes the books: SOX systems in production stay still."},
     {"environments": ["prod"], "sox_scoped": True}),
    (FreezeWindow, "Quarter-end close", {
        **CLOSE, "recurrence": Recurrence.LAST_BUSINESS_DAYS_OF_QUARTER, "business_days": 5,
        "severity": Severity.HARD, "reason": "Quarterly reporting and regulatory returns: production stays still."},
     {"environments": ["prod"]}),
    (FreezeWindow, "Weekend production freeze", {
        "timezone": LONDON, "recurrence": Recurrence.RRULE, "rrule": "FREQ=WEEKLY;BYDAY=FR",
        "start_date": date(2024, 1, 5), "start_time": time(16), "duration_minutes": (2 * 24 + 14) * 60,
        "severity": Severity.HARD, "reason": "Friday 16:00 to Monday 06:00: a skeleton crew is on call."},
     {"environments": ["prod"]}),
    (FreezeWindow, "Christmas and New Year", {
        "timezone": LONDON, "recurrence": Recurrence.RRULE, "rrule": "FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=24",
        "start_date": date(2024, 12, 24), "start_time": time(0), "duration_minutes": 9 * 24 * 60,
        "severity": Severity.SOFT, "extra_approval_role": Role.BUSINESS_OWNER,
        "reason": "Bank holidays and peak card spending: the business owner signs off every production change."},
     {"environments": ["prod"]}),
    (MaintenanceWindow, "Tier 1 production nights", {
        "timezone": LONDON, "recurrence": Recurrence.RRULE, "rrule": "FREQ=WEEKLY;BYDAY=TU,TH",
        "start_date": date(2024, 1, 2), "start_time": time(22), "duration_minutes": 4 * 60,
        "enforcement": MaintenanceEnforcement.FLAG},
     {"environments": ["prod"], "max_criticality": 1}),
]


@dataclass(frozen=True)
class DemoChange:
    """A change to leave in `status`; `start` is its window's opening, in hours from now."""

    title: str
    cis: list[str]
    environment: str
    start: float
    status: str
    hours: float = 2
    change_type: str = "normal"
    approved_by: list[str] = field(default_factory=list)  # partial approvals of a change left in review
    days_ago: int = 0  # a finished change: its window and history are moved this far into the past
    triggers: bool = False
    note: str = ""
    keep_clear: float = 0  # hours its slot stays clear of freezes for, when a change planned to overlap follows
    follows: tuple[str, float] | None = None  # (title, hours after its start): planned to overlap that change


# The title identifies a demo change: a second run finds it and adds nothing.
DEMO_CHANGES = [
    DemoChange("Migrate general-ledger-export to Parquet files", ["general-ledger-export"], "staging", 24 * 8,
               S.DRAFT),
    DemoChange("Add idempotency keys to sepa-connector retries", ["sepa-connector"], "prod", 24 * 6, S.CAB_REVIEW),
    DemoChange("Tune fraud-scoring model thresholds", ["fraud-scoring"], "staging", 24 * 5, S.CAB_REVIEW),
    # Awaiting the CAB member, the SRE and the business owner (the compliance officer has approved); its
    # window overlaps the network patch below, whose blast radius holds payments-api: a conflict to see.
    DemoChange("Upgrade payments-api to 4.2 on JVM 21", ["payments-api"], "prod", 72, S.CAB_REVIEW,
               approved_by=[Role.COMPLIANCE_OFFICER], triggers=True, keep_clear=4),
    DemoChange("Patch the routers of core-network-prod-eu-west-2", ["core-network-prod-eu-west-2"], "prod", 73,
               S.CAB_REVIEW, hours=3, follows=("Upgrade payments-api to 4.2 on JVM 21", 1)),
    DemoChange("Raise the fx-rates cache TTL to 5 minutes", ["fx-rates"], "staging", 30, S.CAB_REVIEW),
    DemoChange("Rotate ledger-service database credentials", ["ledger-service"], "prod", 50, S.CAB_REVIEW,
               hours=1),
    DemoChange("Enable document liveness checks in kyc-service", ["kyc-service"], "prod", 24 * 5, S.APPROVED),
    DemoChange("Resize reporting-warehouse compute", ["reporting-warehouse"], "prod", 48, S.SCHEDULED, hours=4),
    DemoChange("Deploy notifications 3.1", ["notifications"], "prod", -1, S.IMPLEMENTING, hours=3),
    DemoChange("Upgrade the statement-service PDF renderer", ["statement-service"], "prod", -1, S.COMPLETED,
               days_ago=2),
    DemoChange("Raise card-issuing daily limits", ["card-issuing"], "prod", -1, S.FAILED, days_ago=4),
    DemoChange("Release online-banking-web 12.0", ["online-banking-web"], "prod", -1, S.ROLLED_BACK, days_ago=6,
               triggers=True),
    DemoChange("Add the marketing opt-in column to consent-service", ["consent-service"], "prod", -1, S.CLOSED,
               days_ago=12),
    DemoChange("Switch sanctions-screening to the vendor's v5 lists", ["sanctions-screening"], "prod", 24 * 4,
               S.REJECTED, note="No parallel run against the v4 lists yet."),
    DemoChange("Retire the swift-connector test stub", ["swift-connector"], "staging", 40, S.CANCELLED,
               note="Folded into next quarter's clean-up."),
    # Emergency changes owe a retrospective review: one is due soon, one is overdue.
    DemoChange("Hotfix payment-router timeouts", ["payment-router"], "prod", -1, S.COMPLETED,
               change_type="emergency"),
    DemoChange("Renew the expired certificate on edge-lb-prod-eu-west-2", ["edge-lb-prod-eu-west-2"], "prod", -1,
               S.COMPLETED, change_type="emergency", days_ago=6),
    DemoChange("Rotate the TLS certificate on edge-lb-prod-us-east-1", ["edge-lb-prod-us-east-1"], "prod", 26,
               S.SCHEDULED, hours=1, change_type="standard"),
]
# The moves after approval that leave a change in each state, and who makes them.
AFTER_APPROVAL: dict[str, list[str]] = {
    S.APPROVED: [],
    S.SCHEDULED: [S.SCHEDULED],
    S.IMPLEMENTING: [S.SCHEDULED, S.IMPLEMENTING],
    S.COMPLETED: [S.SCHEDULED, S.IMPLEMENTING, S.COMPLETED],
    S.FAILED: [S.SCHEDULED, S.IMPLEMENTING, S.FAILED],
    S.ROLLED_BACK: [S.SCHEDULED, S.IMPLEMENTING, S.ROLLED_BACK],
    S.CLOSED: [S.SCHEDULED, S.IMPLEMENTING, S.COMPLETED, S.CLOSED],
}
BY_RELEASE_MANAGER = {S.SCHEDULED, S.CLOSED}  # the implementer makes the others


@contextlib.contextmanager
def mail_held_back() -> Iterator[None]:
    """Drop the mail the services queue inside this block. The change services put each notification task's delay on
    the transaction's list of on-commit callbacks (the list Django's captureOnCommitCallbacks reads); those of
    the notifications module leave it here, so the demo's history is nobody's news."""
    pending = transaction.get_connection().run_on_commit
    start = len(pending)
    yield
    pending[start:] = [entry for entry in pending[start:] if not _is_mail(entry[1])]


def _is_mail(callback: Callable[[], object]) -> bool:
    task = getattr(getattr(callback, "func", None), "__self__", None)
    return isinstance(task, Task) and type(task).__module__ == notifications.__name__


class Command(BaseCommand):
    help = ("Load the demo bank estate, one user per role (named after the role), and changes in every state a "
            "change rests in, with a CAB meeting. Safe to run again: a second run adds nothing.")

    def add_arguments(self, parser):
        parser.add_argument("--password", help="Password for every demo user; one is generated if omitted.")
        parser.add_argument("--pipeline-token", help="The secret of the pipeline account's demo token "
                                                     "(cbt_...); without it the account gets no token.")
        parser.add_argument("--demo-fleet", help="HOST:PORT,... of the demo fleet (releases/demo_fleet.py) the demo "
                                                 "plan deploys to; without it there is no demo plan.")
        parser.add_argument("--demo-fleet-state", help="The folder the demo fleet keeps what it serves in.")

    def handle(self, *args, password, pipeline_token, demo_fleet, demo_fleet_state, **options):
        password = password or secrets.token_urlsafe(12)
        latest = ChangeRequest.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        with transaction.atomic():
            with mail_held_back():
                users = self._people(password)
                users |= self._service_accounts()
                self._estate(actor=users["admin"])
                self._calendar(actor=users["release_manager"])
                created = self._changes(users)
                self._cab_meeting(users)
                self._builds(users)
                self._running_in_production(users["pipeline"])
                gate_change = self._change_open_now(users, GATE_CHANGE)
                rollout_change = (self._rollout_demo(users, demo_fleet.split(","), demo_fleet_state)
                                  if demo_fleet else None)
                if pipeline_token:
                    self._pipeline_token(users["pipeline"], pipeline_token)
            # Of the mail the demo's history would have sent, only the approval requests of the changes it leaves
            # awaiting approval go out: approved, rejected or cancelled ones await nobody.
            for change_id in ChangeRequest.objects.filter(pk__gt=latest, status=S.CAB_REVIEW).values_list(
                    "pk", flat=True):
                notifications.mail_on_commit(notifications.approvers_notify_queued, change_id, "review")
        self.stdout.write(f"Changes: {created} created.")
        self.stdout.write(f"Demo users ({', '.join(DEMO_PEOPLE)}) have the password: {password}")
        build, environment = GATE_CHANGE.build, GATE_CHANGE.environment
        if rollout_change is not None:
            self.stdout.write(f"Rollout: {rollout_change.number} deploys {ROLLOUT_CHANGE.build.service} "
                              f"{ROLLOUT_CHANGE.build.version} to {ROLLOUT_CHANGE.environment} in waves: "
                              f"/deployments/start/?change={rollout_change.number}")
        self.stdout.write(f"Gate: {gate_change.number} lets {build.service} {build.version} into {environment} "
                          f"now: sh changeboard-gate {gate_change.number} {build.service} {environment} "
                          f"{build.digest}")

    def _people(self, password: str) -> dict:
        users = {}
        # Hashing costs a fifth of a second by design: the demo users, who share one password, share its hash.
        encoded = None
        for username, (full_name, roles, _team) in DEMO_PEOPLE.items():
            first, last = full_name.split(" ", 1)
            user, _ = get_user_model().objects.update_or_create(
                username=username,
                defaults={"first_name": first, "last_name": last, "email": f"{username}@bank.example",
                          "is_staff": Role.ADMIN in roles, "is_superuser": Role.ADMIN in roles},
            )
            if encoded is None and user.check_password(password):
                encoded = user.password
            if user.password != encoded:  # a rerun with the same password changes nothing
                encoded = encoded or make_password(password)
                user.password = encoded
                user.save(update_fields=["password"])
            user.groups.set(Group.objects.filter(name__in=roles))
            users[username] = user
        return users

    def _service_accounts(self) -> dict:
        """Accounts for machines: they sign in with tokens only."""
        accounts = {}
        for username, name in SERVICE_ACCOUNTS.items():
            account, created = get_user_model().objects.get_or_create(username=username,
                                                                      defaults={"first_name": name})
            if created:
                account.set_unusable_password()
                account.save(update_fields=["password"])
            account.groups.set(Group.objects.filter(name=Role.SERVICE_ACCOUNT))
            accounts[username] = account
        return accounts

    def _pipeline_token(self, pipeline, secret: str) -> None:
        if ApiToken.objects.filter(digest=secret_digest(secret)).exists():
            return
        try:
            api_token_create(actor=pipeline, owner=pipeline, name=PIPELINE_TOKEN_NAME, secret=secret)
        except DomainError as refusal:  # e.g. the account has a token of that name with another secret
            raise CommandError(refusal.message) from None
        self.stdout.write(f"Pipeline token {PIPELINE_TOKEN_NAME!r} created for the pipeline account.")

    def _builds(self, users: dict) -> None:
        """The demo builds, registered, scanned and promoted by the pipeline account as a pipeline would."""
        pipeline, environments = users["pipeline"], {env.name: env for env in Environment.objects.all()}
        signing_keys = {}  # team id -> a key made for this run: only this run's new builds need signing
        created = 0
        for build in DEMO_BUILDS:
            service = ConfigurationItem.objects.get(name=build.service)
            artifact = Artifact.objects.filter(digest=build.digest).first()
            if artifact is None:
                signature = ""
                if build.signed:
                    if service.owner_team_id not in signing_keys:
                        signing_keys[service.owner_team_id] = self._signing_key(users["admin"], service.owner_team)
                    signature = signing_keys[service.owner_team_id].sign(build.digest.encode()).hex()
                artifact = artifact_register(
                    actor=pipeline, service=service, version=build.version, digest=build.digest,
                    source_commit=build.source_commit, signature=signature,
                    build_url=f"https://ci.bank.example/{build.service}/{build.version}",
                    provenance={"builder": {"id": "https://ci.bank.example/runners/linux"},
                                "materials": [{"uri": f"git+https://git.bank.example/{build.service}",
                                               "digest": {"sha1": build.source_commit}}]})
                for kind, tool, verdict, critical, high, medium, low in build.scans:
                    scan_attach(actor=pipeline, artifact=artifact, kind=kind, tool=tool, verdict=verdict,
                                critical=critical, high=high, medium=medium, low=low)
                created += 1
            for name in build.passed:
                artifact_promote(actor=pipeline, artifact=artifact, environment=environments[name])
        self.stdout.write(f"Builds: {created} registered.")

    @staticmethod
    def _signing_key(admin, team) -> Ed25519PrivateKey:
        """A new key the team trusts; its private half signs this run's demo builds and is then forgotten."""
        private = Ed25519PrivateKey.generate()
        name = f"demo release key {TrustedKey.objects.filter(team=team).count() + 1}"
        trusted_key_add(actor=admin, team=team, name=name, public_key_pem=public_key_pem(private.public_key()))
        return private

    def _change_open_now(self, users: dict, spec: GateChange) -> ChangeRequest:
        """An approved change whose window is open now for `spec`'s build; a run after its window closed makes a
        new one."""
        build = spec.build
        service = ConfigurationItem.objects.get(name=build.service)
        environment = Environment.objects.get(name=spec.environment)
        now = timezone.now()
        open_now = change_for_deployment(service, environment, now, build.digest)
        # Only its own: during the weekend freeze a demo change under way in production is moved to staging, where
        # it covers the same service.
        if (open_now is not None and open_now.title == spec.title and open_now.planned_end
                and open_now.planned_end >= now + timedelta(hours=1)):
            return open_now
        requester, passed = users["requester"], build.passed[-1]
        change = change_request_create(
            actor=requester, cis=[service], title=spec.title, implementer=requester,
            description=f"Promote {build.service} {build.version}, which passed {passed}, to {environment.name}.",
            environment=environment, planned_start=now - timedelta(minutes=5),
            planned_end=now + timedelta(hours=12), implementation_plan=spec.implementation,
            backout_plan="Redeploy the build that ran before.", test_evidence=f"Green in {passed}; DAST clean.",
            pinned_digests=[build.digest])
        change = change_request_transition(actor=requester, change=change, target=S.SUBMITTED)
        self._approve(change, users)
        change.refresh_from_db()
        return change

    def _rollout_demo(self, users: dict, fleet: list[str], state: str) -> ChangeRequest:
        """The demo plan: notifications to staging in three waves over the local fleet, with the build running
        there as a pipeline once reported it, and an approved change for the next build."""
        service = ConfigurationItem.objects.get(name=ROLLOUT_CHANGE.build.service)
        staging = Environment.objects.get(name=ROLLOUT_CHANGE.environment)
        if live_artifact(service, staging) is None:
            self._reported_long_ago(users["pipeline"], service, staging,
                                    Artifact.objects.get(digest=ROLLOUT_LIVE.digest))
        # -P: the script's own folder (releases/, whose selectors.py would shadow the standard library's) is not
        # put on the import path.
        fleet_command = [sys.executable, "-P", str(Path(demo_fleet.__file__).resolve())]
        health = "http://{target}/health"
        given = PlanInput(
            executor=ExecutorKind.COMMAND, rollout_repeatable=False,
            executor_settings={"forward": [*fleet_command, "forward", state, "{targets}"],
                               "backward": [*fleet_command, "backward", state, "{targets}"],
                               "check": [*fleet_command, "check", state, "{targets}"], "timeout_seconds": 120},
            waves=[WaveInput("canary", fleet[:1], bake_seconds=10), WaveInput("eu-west", fleet[1:3], bake_seconds=5),
                   WaveInput("us-east", fleet[3:], bake_seconds=5, manual_gate=True)],
            checks=[CheckInput("healthy before", CheckPhase.PRE, url=health),
                    CheckInput("serves the new build", CheckPhase.SMOKE, url=health, body_contains="{digest}"),
                    CheckInput("healthy while baking", CheckPhase.WATCH, url=health, max_latency_ms=1000)])
        plan = DeploymentPlan.objects.filter(service=service, environment=staging).first()
        manager = users["release_manager"]
        try:
            if plan is None:
                deployment_plan_create(actor=manager, service=service, environment=staging, plan=given)
            else:  # the fleet listens on new ports each run
                deployment_plan_update(actor=manager, plan=plan, given=given)
        except DomainError as refusal:  # a deployment from an earlier run still holds the plan
            self.stdout.write(f"Demo plan kept as it was: {refusal}")
        return self._change_open_now(users, ROLLOUT_CHANGE)

    def _running_in_production(self, pipeline) -> None:
        """History: the builds that passed prod, deployed there by a pipeline a few hours ago, where the demo's
        ServiceNow (governance/itsm/demo_servicenow.py) has incidents for them to be suspected of. A run a day later
        reports them again, so a suspect stays in the incidents' window."""
        prod = Environment.objects.get(name="prod")
        for build in [build for build in DEMO_BUILDS if "prod" in build.passed]:
            service = ConfigurationItem.objects.get(name=build.service)
            if not Deployment.objects.filter(service=service, environment=prod,
                                             started_at__gte=timezone.now() - timedelta(days=1)).exists():
                self._reported_long_ago(pipeline, service, prod, Artifact.objects.get(digest=build.digest),
                                        ago=timedelta(hours=3))

    @staticmethod
    def _reported_long_ago(pipeline, service, environment, artifact, ago: timedelta = timedelta(days=7)) -> None:
        """History: the build a pipeline deployed `ago` (last week) under an allowed check of the gate."""
        at = timezone.now() - ago
        check = DeploymentCheck.objects.create(service=service, environment=environment, digest=artifact.digest,
                                               artifact=artifact, decision=GateDecision.ALLOW, asked_by=pipeline,
                                               asked_at=at, valid_until=at + timedelta(minutes=5))
        Deployment.objects.create(service=service, environment=environment, artifact=artifact, check_id=check.pk,
                                  reported_by=pipeline, status=DeploymentStatus.SUCCEEDED, started_at=at,
                                  finished_at=at + timedelta(minutes=4))

    def _estate(self, *, actor: ActingUser) -> None:
        teams = {}
        for name, slug in demo.TEAMS:
            teams[slug], _ = Team.objects.update_or_create(
                slug=slug, defaults={"name": name, "email": f"{slug}-team@bank.example"}
            )
        for name, position, is_production, region, team in demo.ENVIRONMENTS:
            Environment.objects.update_or_create(
                name=name, defaults={"position": position, "is_production": is_production, "region": region,
                                     "owner_team": teams[team]},
            )
        for username, (_, _, team_slug) in DEMO_PEOPLE.items():
            if team_slug:
                assign_perm("cmdb.manage_team_cis", get_user_model().objects.get(username=username), teams[team_slug])
        result = inventory_import(actor=actor, records=inventory_from_document("demo", demo.estate_document()))
        self.stdout.write(
            f"Estate: {result.cis_created} CIs created, {result.cis_updated} updated, "
            f"{result.cis_unchanged} unchanged; {result.relationships_created} relationships created, "
            f"{result.relationships_existing} existing."
        )

    def _calendar(self, *, actor: ActingUser) -> None:
        """The bank's freezes and maintenance windows, saved as the release manager would, occurrences and all."""
        environments = {env.name: env for env in Environment.objects.all()}
        created = 0
        for model, name, fields, scope in DEMO_CALENDAR:
            if model.objects.filter(name=name).exists():
                continue
            fields = dict(fields)
            if fields.get("extra_approval_role"):
                fields["extra_approval_role"] = Group.objects.get(name=fields["extra_approval_role"])
            scope = dict(scope)
            named = [environments[env] for env in scope.pop("environments", [])]
            window_save(actor=actor, window=model(), fields={"name": name, **fields, **scope}, environments=named)
            created += 1
        self.stdout.write(f"Calendar: {created} freeze and maintenance windows created.")

    def _tls_template(self, users: dict) -> StandardChangeTemplate:
        """The standard change model for the edge load balancers: written by the administrator, approved by the
        release manager. One found unapproved (made before templates had a scope) is given its scope first."""
        cis, environments = ConfigurationItem.objects.filter(name__startswith="edge-lb-"), Environment.objects.all()
        template = StandardChangeTemplate.objects.filter(name=TLS_TEMPLATE).first()
        if template is None:
            template = standard_template_create(actor=users["admin"], name=TLS_TEMPLATE, **TLS_TEMPLATE_TEXT,
                                                cis=cis, environments=environments)
        elif not template.approved:
            template = standard_template_update(actor=users["admin"], template=template, **TLS_TEMPLATE_TEXT,
                                                cis=cis, environments=environments)
        if not template.approved:
            template = standard_template_approve(actor=users["release_manager"], template=template)
        return template

    def _changes(self, users: dict) -> int:
        """Each demo change that is not there yet, taken through the change services to its state."""
        template = self._tls_template(users)
        existing = set(ChangeRequest.objects.filter(title__in=[c.title for c in DEMO_CHANGES])
                       .values_list("title", flat=True))
        environments = {env.name: env for env in Environment.objects.all()}
        hour = timezone.now().replace(minute=0, second=0, microsecond=0)
        created = 0
        for spec in DEMO_CHANGES:
            if spec.title in existing:
                continue
            self._change(spec, users, template=template, environments=environments,
                         start=hour + timedelta(hours=spec.start))
            created += 1
        return created

    def _change(self, spec: DemoChange, users: dict, *, template, environments: dict, start: datetime) -> None:
        requester, release_manager = users["requester"], users["release_manager"]
        environment = environments[spec.environment]
        standard = spec.change_type == "standard"
        change = change_request_create(
            actor=requester, cis=list(ConfigurationItem.objects.filter(name__in=spec.cis)), title=spec.title,
            description=f"{spec.title}. Demo change.", change_type=spec.change_type,
            template=template if standard else None, implementer=requester, environment=environment,
            planned_start=start, planned_end=start + timedelta(hours=spec.hours),
            implementation_plan=template.implementation_plan if standard else "Roll out with the pipeline.",
            backout_plan="" if standard else "Redeploy the previous release.",
            test_evidence="Pipeline run green in staging; load test attached.",
            rollback_error_rate_pct=2 if spec.triggers else None,
        )
        self._plan(change, spec, requester=requester, staging=environments["staging"])
        if spec.status == S.DRAFT:
            return
        change = change_request_transition(actor=requester, change=change, target=S.SUBMITTED)
        for role in spec.approved_by:
            approval_record(actor=users[role], change=change, decision="approve", comment="Fine from my side.")
        if spec.status == S.REJECTED:
            approval_record(actor=users["cab_member"], change=change, decision="reject", comment=spec.note)
        elif spec.status == S.CANCELLED:
            change_request_transition(actor=requester, change=change, target=S.CANCELLED, reason=spec.note)
        elif spec.status != S.CAB_REVIEW:
            self._approve(change, users)
            for target in AFTER_APPROVAL[spec.status]:
                actor = release_manager if target in BY_RELEASE_MANAGER else requester
                change_request_transition(actor=actor, change=change, target=target)
        if spec.days_ago:
            self._move_into_past(change, timedelta(days=spec.days_ago))

    def _plan(self, change: ChangeRequest, spec: DemoChange, *, requester, staging) -> None:
        """Move the draft into a slot the calendar allows, as a requester would: a future window to the first
        suggested slot from its nominal start (inside a maintenance window where one governs); a change that
        must be under way now, if a hard freeze covers it in production now, to staging instead."""
        now = timezone.now()
        if spec.follows:
            anchor = ChangeRequest.objects.get(title=spec.follows[0])
            assert anchor.planned_start is not None  # every demo change is made with its window
            start = anchor.planned_start + timedelta(hours=spec.follows[1])
            change_request_update(actor=requester, change=change, planned_start=start,
                                  planned_end=start + timedelta(hours=spec.hours))
            change.refresh_from_db()
            if calendar_refusal(change, target=S.SCHEDULED, now=now) is None:
                return
        assert change.planned_start is not None and change.planned_end is not None  # made with its window
        if change.planned_start <= now:
            if calendar_refusal(change, target=S.SCHEDULED, now=now):  # emergency changes pass: the ECAB decides
                change_request_update(actor=requester, change=change, environment=staging)
            return
        probe = change.planned_start + timedelta(hours=max(spec.hours, spec.keep_clear))
        change.planned_end, planned_end = probe, change.planned_end  # the length suggestions must keep clear
        slots = schedule_suggestions(change, after=change.planned_start, count=1)
        change.planned_end = planned_end
        if not slots:
            raise CommandError(f"The calendar leaves no slot for {spec.title!r} in the next 60 days.")
        start = slots[0][0]
        if start != change.planned_start:
            change_request_update(actor=requester, change=change, planned_start=start,
                                  planned_end=start + timedelta(hours=spec.hours))
        change.refresh_from_db()

    def _approve(self, change: ChangeRequest, users: dict) -> None:
        """Each approval the change still needs, from the demo user named after the role."""
        change.refresh_from_db()
        while change.status == S.CAB_REVIEW:
            role = next(o.role for o in outstanding_approvals(change) if o.lacking)
            approval_record(actor=users[role], change=change, decision="approve", comment="Reviewed, go ahead.")
            change.refresh_from_db()

    def _move_into_past(self, change: ChangeRequest, delta: timedelta) -> None:
        """A finished change ran in a window open during this run; place it, and its record, `delta` earlier,
        or earlier still where a hard freeze then covered it (normal changes go ahead only outside them)."""
        change.refresh_from_db()
        cis = list(change.affected_cis.all())
        assert change.planned_start is not None and change.planned_end is not None  # made with its window
        while any(freeze_stops(hit.freeze.severity, change.change_type) for hit in freezes_covering(
                    cis, change.environment_id, change.planned_start - delta, change.planned_end - delta)):
            delta += timedelta(hours=1)
        ChangeRequest.objects.filter(pk=change.pk).update(**{
            name: F(name) - delta for name in ("planned_start", "planned_end", "approved_at", "retrospective_due",
                                               "review_requested_at", "created_at")})
        ChangeStatusChange.objects.filter(change=change).update(at=F("at") - delta)
        Approval.objects.filter(change=change).update(created_at=F("created_at") - delta)

    def _cab_meeting(self, users: dict) -> None:
        if CabMeeting.objects.filter(title=CAB_MEETING).exists():
            return
        today = timezone.now().replace(hour=10, minute=0, second=0, microsecond=0)
        next_tuesday = today + timedelta(days=(1 - today.weekday()) % 7 or 7)
        cab_meeting_create(actor=users["release_manager"], title=CAB_MEETING, starts_at=next_tuesday,
                           attendees=[users[r] for r in ("cab_member", "sre", "business_owner", "compliance_officer")])

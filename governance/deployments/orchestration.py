"""Governance around the deployment engine (releases/engine.py): the task that advances a deployment one step, the
gate asked before each wave, the change moved as its deployment goes, and the queue of deployments waiting for
their service and environment.

The task is sent only once the transaction that made its step ready commits, and it is safe to run twice: the
engine claims each step by a conditional UPDATE, so a second delivery finds the step taken (or done) and does
nothing. If the broker cannot take the message, nothing is lost: the state is in PostgreSQL and the beat job
(`deployments_resume_stalled`) sends the task again.
"""

import logging
import os
import socket
import threading
from datetime import datetime

from celery import shared_task
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from kombu.exceptions import OperationalError

from governance.audit.ledger import audit_record
from governance.changes.services import (
    CHANGE_AFTER_DEPLOYMENT,
    change_request_deployment_ended,
    change_request_deployment_started,
)
from governance.core.errors import DomainError
from governance.gate.services import Question, gate_decision
from governance.models.changes import ChangeStatus as S
from releases.engine import Hooks, advance, lease
from releases.models import (
    HOLDING_STATUSES,
    ROLLBACK_KINDS,
    Deployment,
    DeploymentKind,
    DeploymentPlan,
    DeploymentStatus,
    RolloutStep,
    StepState,
)
from releases.selectors import live_artifact, queued_next

logger = logging.getLogger(__name__)

# The gate denies a pipeline a service and environment another deployment holds; a deployment Changeboard runs
# waits queued instead, and once it runs, the one holding them is itself.
QUEUED_INSTEAD = frozenset({"environment_locked"})

def question_of(deployment: Deployment) -> Question:
    return Question(change=deployment.change_number, service=deployment.service.name,
                    environment=deployment.environment.name, digest=deployment.artifact.digest)


def wave_refusals(deployment: Deployment) -> list[str]:
    """The gate's own reasons not to start the next wave now: a lockdown or a hard freeze declared since the
    deployment started, the window closed, the change put on hold..."""
    reasons = gate_decision(question_of(deployment), now=timezone.now())
    return [reason["message"] for reason in reasons if reason["code"] not in QUEUED_INSTEAD]


def _change_after(deployment: Deployment) -> str:
    """An abort that undid something leaves the change rolled back; one that found nothing to undo leaves it failed
    (it was not carried out)."""
    if deployment.status == DeploymentStatus.ABORTED:
        undone = deployment.steps.filter(kind__in=ROLLBACK_KINDS, state=StepState.SUCCEEDED).exists()
        return S.ROLLED_BACK if undone else S.FAILED
    return CHANGE_AFTER_DEPLOYMENT[deployment.status]


def _ended(deployment: Deployment) -> None:
    """In the transaction that ends a deployment: its change follows, and the next deployment queued for the
    service and environment starts."""
    change_request_deployment_ended(deployment, _change_after(deployment))
    start_next(deployment.service_id, deployment.environment_id)


def send(deployment_id: int) -> None:
    try:
        deployment_advance.delay(deployment_id)
    except OperationalError:  # the broker is down: the state is safe, and the beat job sends it again
        logger.warning("Could not queue the next step of deployment %s; the beat job will.", deployment_id)


HOOKS = Hooks(wave_check=wave_refusals, ended=_ended, send=send)


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


@shared_task(name="governance.tasks.deployment_advance", ignore_result=True, acks_late=True,
             reject_on_worker_lost=True)
def deployment_advance(deployment_id: int) -> str:
    """One step of a deployment. Acknowledged late and given back if the worker dies, so a killed worker's step is
    delivered again; the step's lease (not the message) decides who runs it, so a second delivery is harmless."""
    return advance(deployment_id, owner=_owner(), hooks=HOOKS)


# --- starting, and the queue ---------------------------------------------------------------------------------------

def begin(deployment: Deployment) -> bool:
    """Start a queued deployment if nothing holds its service in its environment: the change goes implementing and
    the first step's task is sent after commit. False when it stays queued. Called with its plan locked."""
    if Deployment.objects.filter(service_id=deployment.service_id, environment_id=deployment.environment_id,
                                 status__in=HOLDING_STATUSES).exists():
        return False
    try:
        with transaction.atomic():
            started = Deployment.objects.filter(pk=deployment.pk, status=DeploymentStatus.QUEUED).update(
                status=DeploymentStatus.STARTED, started_at=timezone.now(),
                previous_artifact=live_artifact(deployment.service, deployment.environment))
            if started:
                change_request_deployment_started(deployment)
    except IntegrityError:  # a pipeline's deployment took the environment meanwhile: wait for it
        return False
    except DomainError as refusal:  # e.g. the window closed while it waited: it will not start
        Deployment.objects.filter(pk=deployment.pk, status=DeploymentStatus.QUEUED).update(
            status=DeploymentStatus.ABORTED, finished_at=timezone.now(), halt_reason=f"Not started: {refusal}")
        audit_record("deployment_not_started", obj=deployment, context={"reason": str(refusal)})
        return False
    if started:
        transaction.on_commit(lambda: send(deployment.pk))
    return bool(started)


def start_next(service_id: int, environment_id: int) -> Deployment | None:
    """Start the deployment queued longest for this service and environment, if they are free."""
    plan = DeploymentPlan.objects.select_for_update().filter(service_id=service_id,
                                                             environment_id=environment_id).first()
    if plan is None:
        return None
    while (waiting := queued_next(service_id, environment_id)) is not None:
        if begin(waiting):
            return waiting
        waiting.refresh_from_db(fields=["status"])
        if waiting.status == DeploymentStatus.QUEUED:
            return None  # the environment is held: it waits its turn
    return None


def deployments_resume_stalled(*, now: datetime | None = None) -> int:
    """The beat job: send the task again for started deployments that nothing advances (a worker killed, a lease
    run out, a message the broker lost), and start queued deployments whose environment came free. How many."""
    now = now or timezone.now()
    quiet_since = now - lease()
    live = RolloutStep.objects.filter(deployment=OuterRef("pk"), state=StepState.RUNNING, lease_expires_at__gte=now)
    recent = RolloutStep.objects.filter(Q(started_at__gte=quiet_since) | Q(finished_at__gte=quiet_since),
                                        deployment=OuterRef("pk"))
    stalled = list(Deployment.objects.filter(kind=DeploymentKind.RUN, status=DeploymentStatus.STARTED,
                                             started_at__lt=quiet_since)
                   .exclude(Exists(live)).exclude(Exists(recent)).values_list("pk", flat=True))
    for deployment_id in stalled:
        send(deployment_id)
    waiting = (Deployment.objects.filter(kind=DeploymentKind.RUN, status=DeploymentStatus.QUEUED)
               .values_list("service_id", "environment_id").distinct())
    started = 0
    for service_id, environment_id in list(waiting):
        with transaction.atomic():
            started += start_next(service_id, environment_id) is not None
    return len(stalled) + started

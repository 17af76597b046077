"""E-mail about changes (the console backend in development): to the people whose approval a change needs, and to
its requester and implementer when it is approved, rejected or scheduled, or when nobody can approve it. Links are
absolute, made from CHANGEBOARD_BASE_URL, so they open from a mail client."""

import functools
import logging

from celery import shared_task
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mass_mail
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from kombu.exceptions import OperationalError

from governance.changes.permissions import owning_teams
from governance.changes.selectors import ApprovalState, approval_gaps, decision_refusal, role_holders
from governance.models.changes import ChangeRequest
from governance.models.changes import ChangeStatus as S

SUBJECTS = {
    "review": "Approval needed: {number} {title}",
    "reminder": "Reminder, approval still needed: {number} {title}",
    "stale": "Your approval no longer counts: {number} {title} changed",
}
# What the requester and the implementer are told, by the state the change moved to.
OUTCOME_SUBJECTS: dict[str, str] = {
    S.APPROVED: "Approved: {number} {title}",
    S.REJECTED: "Rejected: {number} {title}",
    S.SCHEDULED: "Scheduled: {number} {title}",
}
UNAPPROVABLE_SUBJECT = "Nobody can approve {number} {title}"

logger = logging.getLogger(__name__)


def change_url(change: ChangeRequest) -> str:
    """The change page's address as a mail client opens it."""
    return settings.CHANGEBOARD_BASE_URL + reverse("governance:change_detail", args=[change.number])


def _window(change: ChangeRequest) -> str:
    if change.planned_start is None or change.planned_end is None:
        return "not planned"
    return f"{change.planned_start:%Y-%m-%d %H:%M} to {change.planned_end:%Y-%m-%d %H:%M} UTC"


def approvers_to_notify(change: ChangeRequest) -> list:
    """Everyone holding a role the current revision still needs, globally or for an owning team, who may approve
    it (not the requester, the implementer or whoever already decided on this revision)."""
    state, teams = ApprovalState.of(change), owning_teams(change)
    users = role_holders(change, [o.role for o in state.outstanding() if o.lacking], teams)
    return sorted((u for u in users if u.email and decision_refusal(u, change, state, teams=teams) is None),
                  key=lambda u: u.pk)


def approvers_notify(change: ChangeRequest, kind: str, user_ids: list[int] | None = None) -> int:
    if user_ids is not None:
        recipients = list(get_user_model().objects.filter(Q(pk__in=user_ids), is_active=True).exclude(email=""))
    else:
        recipients = approvers_to_notify(change)
    subject = SUBJECTS[kind].format(number=change.number, title=change.title)
    body = (f"{change.number} {change.title}\nRisk: {change.risk_level or 'not assessed'} "
            f"({change.risk_score if change.risk_score is not None else '-'})\n"
            f"Window: {_window(change)}\n"
            f"Review it in Changeboard: {change_url(change)}\n")
    return send_mass_mail([(subject, body, None, [user.email]) for user in recipients], fail_silently=False)


def _requester_and_implementer(change: ChangeRequest, actor_id: int | None = None) -> list:
    """The requester and the implementer, once each, who can receive mail; not whoever made the move."""
    people = {person.pk: person for person in (change.requester, change.implementer)
              if person is not None and person.is_active and person.email and person.pk != actor_id}
    return [people[pk] for pk in sorted(people)]


def requester_notify(change: ChangeRequest, status: str, actor_id: int | None = None) -> int:
    """Tell the requester and the implementer that the change was approved, rejected or scheduled, and why."""
    move = change.status_changes.filter(to_status=status).select_related("actor").order_by("at", "pk").last()
    by = f" by {move.actor.get_full_name() or move.actor.get_username()}" if move and move.actor else ""
    reason = f": {move.reason}" if move and move.reason else ""
    subject = OUTCOME_SUBJECTS[status].format(number=change.number, title=change.title)
    body = (f"{change.number} {change.title}\n{S(status).label}{by}{reason}\n"
            f"Window: {_window(change)}\n"
            f"See it in Changeboard: {change_url(change)}\n")
    return send_mass_mail([(subject, body, None, [person.email])
                           for person in _requester_and_implementer(change, actor_id)], fail_silently=False)


def unapprovable_notify(change: ChangeRequest) -> int:
    """Tell the requester and the implementer when the change in review lacks approvals nobody may give."""
    if change.status != S.CAB_REVIEW:
        return 0
    gaps = approval_gaps(change, ApprovalState.of(change))
    if not gaps:
        return 0
    subject = UNAPPROVABLE_SUBJECT.format(number=change.number, title=change.title)
    body = (f"{change.number} {change.title} is in CAB review, but it cannot be approved:\n"
            + "".join(f"- {gap.message}\n" for gap in gaps)
            + f"Change it in Changeboard: {change_url(change)}\n")
    return send_mass_mail([(subject, body, None, [person.email]) for person in _requester_and_implementer(change)],
                          fail_silently=False)


@shared_task(name="governance.tasks.approvers_notify", ignore_result=True, autoretry_for=(OSError,), retry_backoff=True,
             max_retries=5)
def approvers_notify_queued(change_id: int, kind: str, user_ids: list[int] | None = None) -> None:
    """The worker's side of `approvers_notify`: a change deleted since it was queued is nobody's to hear about. A
    change sent for review that nobody may approve is told to its requester."""
    change = ChangeRequest.objects.filter(pk=change_id).first()
    if change is not None:
        approvers_notify(change, kind, user_ids)
        if kind == "review":
            unapprovable_notify(change)


@shared_task(name="governance.tasks.requester_notify", ignore_result=True, autoretry_for=(OSError,), retry_backoff=True,
             max_retries=5)
def requester_notify_queued(change_id: int, status: str, actor_id: int | None = None) -> None:
    """The worker's side of `requester_notify`, queued when the change moves to `status`."""
    change = ChangeRequest.objects.select_related("requester", "implementer").filter(pk=change_id).first()
    if change is not None:
        requester_notify(change, status, actor_id)


class QueuedMail(functools.partial):
    """A notification task's delay, called once the change commits. With the broker down the change stands,
    committed, and the mail that could not be queued is logged: the request that made the change does not fail
    after the fact."""

    def __call__(self, /, *args, **kwargs):
        try:
            return super().__call__(*args, **kwargs)
        except OperationalError:
            logger.warning("Could not queue %s%s: the broker is unreachable.", self.func.__self__.name, self.args)
            return None


def mail_on_commit(task, *args) -> None:
    transaction.on_commit(QueuedMail(task.delay, *args))

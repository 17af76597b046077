"""E-mail to the people whose approval a change needs (the console backend in development)."""

from celery import shared_task
from django.contrib.auth import get_user_model
from django.core.mail import send_mass_mail
from django.db.models import Q
from django.urls import reverse
from guardian.shortcuts import get_users_with_perms

from governance.changes.permissions import owning_teams
from governance.changes.selectors import ApprovalState, decision_refusal
from governance.models.changes import ChangeRequest
from governance.roles import team_role_codename

SUBJECTS = {
    "review": "Approval needed: {number} {title}",
    "reminder": "Reminder, approval still needed: {number} {title}",
    "stale": "Your approval no longer counts: {number} {title} changed",
}


def approvers_to_notify(change: ChangeRequest) -> list:
    """Everyone holding a role the current revision still needs, globally or for an owning team, who may approve
    it (not the requester, the implementer or whoever already decided on this revision)."""
    state, teams = ApprovalState.of(change), owning_teams(change)
    roles = [o.role for o in state.outstanding() if o.lacking]
    users = set(get_user_model().objects.filter(groups__name__in=roles, is_active=True))
    for team in teams:
        for role in roles:
            codename = team_role_codename(role)
            # guardian's annotation covers its attach_perms form too, which gives names; this form gives users.
            users |= set(get_users_with_perms(team, only_with_perms_in=[codename],  # type: ignore[arg-type]
                                              with_superusers=False))
    return sorted((u for u in users if u.email and decision_refusal(u, change, state, teams=teams) is None),
                  key=lambda u: u.pk)


def approvers_notify(change: ChangeRequest, kind: str, user_ids: list[int] | None = None) -> int:
    if user_ids is not None:
        recipients = list(get_user_model().objects.filter(Q(pk__in=user_ids), is_active=True).exclude(email=""))
    else:
        recipients = approvers_to_notify(change)
    subject = SUBJECTS[kind].format(number=change.number, title=change.title)
    link = reverse("governance:change_detail", args=[change.number])
    body = (f"{change.number} {change.title}\nRisk: {change.risk_level or 'not assessed'} "
            f"({change.risk_score if change.risk_score is not None else '-'})\n"
            f"Window: {change.planned_start:%Y-%m-%d %H:%M} to {change.planned_end:%Y-%m-%d %H:%M} UTC\n"
            f"Review it in Changeboard: {link}\n")
    return send_mass_mail([(subject, body, None, [user.email]) for user in recipients], fail_silently=False)


@shared_task(name="governance.tasks.approvers_notify", ignore_result=True, autoretry_for=(OSError,), retry_backoff=True,
             max_retries=5)
def approvers_notify_queued(change_id: int, kind: str, user_ids: list[int] | None = None) -> None:
    """The worker's side of `approvers_notify`: a change deleted since it was queued is nobody's to hear about."""
    change = ChangeRequest.objects.filter(pk=change_id).first()
    if change is not None:
        approvers_notify(change, kind, user_ids)

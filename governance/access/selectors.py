"""Reads of API tokens and their owners that the tokens page shares."""

from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet

from governance.models import ApiToken
from governance.roles import Role


def may_issue_for_others(user) -> bool:
    """Administrators issue tokens for service accounts (pipelines); everyone else only for themselves."""
    return user.is_active and user.has_perm("governance.add_apitoken")


def token_owners_for(user) -> QuerySet:
    """Whom `user` may issue a token for: themselves, and active service accounts if they are an administrator."""
    people = get_user_model().objects.filter(pk=user.pk)
    if may_issue_for_others(user):
        people = get_user_model().objects.filter(
            Q(pk=user.pk) | Q(groups__name=Role.SERVICE_ACCOUNT, is_active=True)).distinct()
    return people.order_by("username")


def tokens_managed_by(user) -> QuerySet[ApiToken]:
    """The tokens `user` sees and may revoke or rotate on the tokens page: their own, and an administrator's
    service accounts' too."""
    owners = Q(user=user)
    if user.is_active and user.has_perm("governance.change_apitoken"):
        owners |= Q(user__groups__name=Role.SERVICE_ACCOUNT)
    return (ApiToken.objects.filter(owners).distinct().select_related("user")
            .prefetch_related("services", "environments").order_by("-created_at"))

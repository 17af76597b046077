"""The roles people hold: each is a Django group, created by a data migration with its permissions."""

from django.db import models


class Role(models.TextChoices):
    REQUESTER = "requester", "Requester"
    CAB_MEMBER = "cab_member", "CAB member"
    RELEASE_MANAGER = "release_manager", "Release manager"
    AUDITOR = "auditor", "Auditor"
    ADMIN = "admin", "Administrator"
    SERVICE_ACCOUNT = "service_account", "Service account"


def user_roles(user) -> set[str]:
    if not user.is_authenticated:
        return set()
    return {name for name in user.groups.values_list("name", flat=True) if name in Role.values}

"""Access: API tokens for people and service accounts."""

from django.conf import settings
from django.contrib.postgres.aggregates import ArrayAgg
from django.db import models
from django.utils import timezone

from governance.core.credentials import CredentialScope


class ApiTokenQuerySet(models.QuerySet):
    def usable(self, at=None):
        at = at or timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=at)
        )


class ApiToken(models.Model):
    """A bearer token: only its SHA-256 digest is stored; the secret is shown once at creation."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, help_text="First characters of the token, to recognise it.")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # A pipeline's token names what it deploys: it cannot ask about or report any other service or environment.
    services = models.ManyToManyField("cmdb.ConfigurationItem", blank=True, related_name="+",
                                      help_text="Services this token may act for; none means any.")
    environments = models.ManyToManyField("cmdb.Environment", blank=True, related_name="+",
                                          help_text="Environments this token may act for; none means any.")
    # Whether a scope was given: one whose CIs or environments were all deleted since then allows nothing.
    services_scoped = models.BooleanField(default=False, editable=False)
    environments_scoped = models.BooleanField(default=False, editable=False)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["user", "name"], name="api_token_name_unique_per_user"),
            models.CheckConstraint(
                condition=models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=models.F("created_at")),
                name="api_token_expires_after_creation",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def is_expired(self, at=None) -> bool:
        return self.expires_at is not None and self.expires_at <= (at or timezone.now())

    @property
    def status(self) -> str:
        if self.is_revoked:
            return "revoked"
        if self.is_expired():
            return "expired"
        return "active"

    def credential_scope(self, read: tuple[list[int], list[int]] | None = None) -> CredentialScope:
        """What this token may act for; `read` is its (services, environments) when the caller read them already,
        and they are read here (one query) only for a scoped token."""
        if not (self.services_scoped or self.environments_scoped):
            return CredentialScope(self.name)
        if read is None:
            found = ApiToken.objects.filter(pk=self.pk).aggregate(
                services=ArrayAgg("services", distinct=True, filter=models.Q(services__isnull=False), default=[]),
                environments=ArrayAgg("environments", distinct=True, filter=models.Q(environments__isnull=False),
                                      default=[]),
            )
            read = found["services"], found["environments"]
        return CredentialScope(self.name, services=frozenset(read[0]) if self.services_scoped else None,
                               environments=frozenset(read[1]) if self.environments_scoped else None)

"""What exists: teams, environments, configuration items and the relationships between them."""

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator, URLValidator
from django.db import models
from django.db.models.functions import Lower

from cmdb.choices import CIType, Criticality, LifecycleStatus, RelationshipType

name_validator = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
    "Use letters, digits, dots, dashes and underscores, starting with a letter or digit.",
)
tag_validator = RegexValidator(r"^[a-z0-9][a-z0-9:._-]*$", "Tags are lower-case words (a-z, 0-9, : . _ -).")
# As GitHub names a repository in its webhooks (repository.full_name): an account of at most 39 letters, digits and
# dashes, then the repository's name.
github_repository_validator = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/(?!\.\.?$)[A-Za-z0-9._-]{1,100}$",
    "Give the repository as GitHub names it, owner/name: e.g. octo-bank/payments-api.",
)
GITHUB_ENVIRONMENT_NAME_LENGTH = 255  # GitHub's own limit
MAX_GITHUB_ENVIRONMENTS = 50


class Team(models.Model):
    """A group of people who own configuration items and environments."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    email = models.EmailField(blank=True)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]
        permissions = [("manage_team_cis", "Can manage the configuration items this team owns")]

    def __str__(self) -> str:
        return self.name


class Environment(models.Model):
    """A stage of the promotion chain (dev -> ... -> prod); position orders the chain."""

    name = models.CharField(max_length=50, unique=True, validators=[name_validator])
    position = models.PositiveSmallIntegerField(unique=True, help_text="Order in the promotion chain, from 0.")
    is_production = models.BooleanField(default=False)
    region = models.CharField(max_length=50, blank=True)
    owner_team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["position"]

    def __str__(self) -> str:
        return self.name


class ConfigurationItem(models.Model):
    """Anything whose change needs governing: a service, its database, the host or cluster under it."""

    name = models.CharField(max_length=200, validators=[name_validator])
    ci_type = models.CharField("type", max_length=20, choices=CIType.choices)
    criticality = models.PositiveSmallIntegerField(choices=Criticality.choices, default=Criticality.TIER_3)
    owner_team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="configuration_items")
    lifecycle_status = models.CharField(
        max_length=20, choices=LifecycleStatus.choices, default=LifecycleStatus.IN_SERVICE
    )
    environment = models.ForeignKey(
        Environment, null=True, blank=True, on_delete=models.PROTECT, related_name="configuration_items"
    )
    region = models.CharField(max_length=50, blank=True)
    tags = ArrayField(models.CharField(max_length=50, validators=[tag_validator]), default=list, blank=True)
    sox_scoped = models.BooleanField("SOX scoped", default=False)
    phi = models.BooleanField("holds PHI", default=False)
    pci = models.BooleanField("PCI scoped", default=False)
    # Why the compliance flags or the tier last changed: captured by the ledger with the change itself.
    compliance_reason = models.CharField(max_length=500, blank=True)
    description = models.TextField(blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    # What GitHub's deployment protection rules say of a deployment: the repository, and the GitHub environment a
    # job deploys to, whose name a workflow chooses (`jobs.<id>.environment`). A repository that builds several
    # services tells them apart by the GitHub environments each deploys through, each one mapped here to the
    # Changeboard environment it stands for (README, "GitHub environments").
    github_repository = models.CharField(
        max_length=140, blank=True, validators=[github_repository_validator],
        help_text="The GitHub repository that builds and deploys this CI, owner/name (e.g. octo-bank/payments-api).",
    )
    github_environments = models.JSONField(
        default=dict, blank=True,
        help_text="The GitHub environments of that repository whose deployments deploy this CI, each with the "
                  'Changeboard environment it stands for: {"payments-api-prod": "prod"}. Without one, a GitHub '
                  "environment stands for the Changeboard environment of the same name.",
    )
    # Asked before each wave of a deployment Changeboard runs for a service that depends on this CI: an answer other
    # than 2xx pauses the rollout instead of deploying into a broken dependency (README, "Deployments run by
    # Changeboard"). A CharField with the URL validator, not a URLField, whose form would quietly add a scheme.
    health_url = models.CharField(
        "health URL", max_length=500, blank=True, validators=[URLValidator(schemes=["http", "https"])],
        help_text="An http:// or https:// URL answering 2xx while this CI is healthy, e.g. https://db-proxy/healthz.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "configuration item"
        constraints = [
            # Names identify CIs to pipelines and imports, whatever their case.
            models.UniqueConstraint(Lower("name"), name="ci_name_unique_ci"),
            models.CheckConstraint(condition=models.Q(criticality__gte=1, criticality__lte=4),
                                   name="ci_criticality_tier_1_to_4"),
            models.CheckConstraint(condition=models.Q(ci_type__in=CIType.values), name="ci_type_known"),
            models.CheckConstraint(condition=models.Q(lifecycle_status__in=LifecycleStatus.values),
                                   name="ci_lifecycle_status_known"),
        ]
        indexes = [
            GinIndex(fields=["tags"], name="ci_tags_gin"),  # tags__contains / __overlap filters
            models.Index(fields=["owner_team", "name"], name="ci_owner_team_name"),
        ]
        permissions = [("change_ci_compliance", "Can change a CI's compliance flags and criticality")]

    def __str__(self) -> str:
        return self.name

    COMPLIANCE_FLAGS = ("sox_scoped", "pci", "phi")
    # What decides the approvals a change to this CI needs, and which standard templates and freezes cover it:
    # a team's maintainers do not change their own controls.
    COMPLIANCE_FIELDS = (*COMPLIANCE_FLAGS, "criticality", "ci_type")

    @property
    def controlled_fields(self) -> tuple[str, ...]:
        """The fields only a compliance officer or an admin changes: the compliance fields, and the name of a CI
        under control (renamed, its name could be added again without its flags)."""
        return (*self.COMPLIANCE_FIELDS, "name") if self.compliance_controlled else self.COMPLIANCE_FIELDS

    def compliance_changed(self, values: dict) -> list[str]:
        """The controlled fields that `values` would change on this CI."""
        return [name for name in self.controlled_fields if name in values and values[name] != getattr(self, name)]

    @property
    def compliance_controlled(self) -> bool:
        """Flagged or of a critical tier: removing it would lower the controls on changes to it."""
        return self.sox_scoped or self.pci or self.phi or self.criticality <= Criticality.TIER_2

    def clean(self) -> None:
        super().clean()
        if not isinstance(self.attributes, dict):
            raise ValidationError({"attributes": "Attributes must be a JSON object."})
        self.tags = sorted(set(self.tags or []))
        self.github_environments = github_environments_checked(self.github_environments)
        if self.github_environments and not self.github_repository:
            raise ValidationError({"github_environments": "Name the GitHub repository these environments are of."})

    def github_environment_target(self, github_environment: str) -> str | None:
        """The Changeboard environment this CI maps a GitHub environment to; None when it maps it to none."""
        wanted = github_environment.lower()
        return next((target for name, target in (self.github_environments or {}).items()
                     if name.lower() == wanted), None)


def github_environments_checked(mapping: object) -> dict[str, str]:
    """A CI's GitHub environments, each naming a Changeboard environment, which is spelled as Changeboard spells
    it. GitHub's environment names ignore case, so two that differ only in case are one."""
    if not isinstance(mapping, dict):
        raise ValidationError({"github_environments": 'Give a JSON object: {"<GitHub environment>": '
                                                      '"<Changeboard environment>"}.'})
    if len(mapping) > MAX_GITHUB_ENVIRONMENTS:
        raise ValidationError({"github_environments": f"Map at most {MAX_GITHUB_ENVIRONMENTS} GitHub environments."})
    if not mapping:
        return {}
    known = {name.lower(): name for name in Environment.objects.values_list("name", flat=True)}
    checked: dict[str, str] = {}
    seen: set[str] = set()
    for github_name, target in mapping.items():
        if (not github_name.strip() or len(github_name) > GITHUB_ENVIRONMENT_NAME_LENGTH
                or any(ord(c) < 32 or ord(c) == 127 for c in github_name)):
            raise ValidationError({"github_environments": f"{github_name[:100]!r} is no GitHub environment name: "
                                                          f"1 to {GITHUB_ENVIRONMENT_NAME_LENGTH} printable "
                                                          "characters."})
        if github_name.lower() in seen:
            raise ValidationError({"github_environments": f"{github_name!r} is given twice: GitHub environment "
                                                          "names ignore case."})
        seen.add(github_name.lower())
        if not isinstance(target, str) or target.lower() not in known:
            raise ValidationError({"github_environments": f"{github_name!r} maps to {str(target)[:100]!r}, which is "
                                                          "no Changeboard environment."})
        checked[github_name] = known[target.lower()]
    return checked


class Relationship(models.Model):
    """A typed edge between two CIs; its type says which end relies on the other (see RelationshipType)."""

    source = models.ForeignKey(ConfigurationItem, on_delete=models.CASCADE, related_name="outgoing")
    target = models.ForeignKey(ConfigurationItem, on_delete=models.CASCADE, related_name="incoming")
    rel_type = models.CharField("type", max_length=20, choices=RelationshipType.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["source_id", "target_id"]
        constraints = [
            models.CheckConstraint(condition=~models.Q(source=models.F("target")), name="relationship_no_self_loop",
                                   violation_error_message="A CI cannot relate to itself."),
            models.UniqueConstraint(fields=["source", "target", "rel_type"], name="relationship_unique",
                                    violation_error_message="This relationship already exists."),
            models.CheckConstraint(condition=models.Q(rel_type__in=RelationshipType.values),
                                   name="relationship_type_known"),
        ]
        indexes = [
            # The blast-radius walk goes from a target to its sources: (target, source) serves it alone.
            models.Index(fields=["target", "source"], name="relationship_target_source"),
        ]

    def __str__(self) -> str:
        return f"{self.source} {self.get_rel_type_display()} {self.target}"

    def clean(self) -> None:
        super().clean()
        if self.source_id is not None and self.source_id == self.target_id:
            raise ValidationError({"target": "A CI cannot relate to itself."})

from django.db import models


class CIType(models.TextChoices):
    SERVICE = "service", "Service"
    APPLICATION = "application", "Application"
    DATABASE = "database", "Database"
    HOST = "host", "Host"
    CLUSTER = "cluster", "Cluster"
    QUEUE = "queue", "Queue"
    NETWORK = "network", "Network"
    STORAGE = "storage", "Storage"


class LifecycleStatus(models.TextChoices):
    PLANNED = "planned", "Planned"
    IN_SERVICE = "in_service", "In service"
    MAINTENANCE = "maintenance", "In maintenance"
    RETIRED = "retired", "Retired"


class Criticality(models.IntegerChoices):
    TIER_1 = 1, "Tier 1 (mission critical)"
    TIER_2 = 2, "Tier 2 (business critical)"
    TIER_3 = 3, "Tier 3 (business operational)"
    TIER_4 = 4, "Tier 4 (administrative)"


class RelationshipType(models.TextChoices):
    """depends_on, runs_on and connects_to: the source relies on the target. part_of: the source is a
    component of the target, so the whole (target) relies on its part (source)."""

    DEPENDS_ON = "depends_on", "depends on"
    RUNS_ON = "runs_on", "runs on"
    CONNECTS_TO = "connects_to", "connects to"
    PART_OF = "part_of", "part of"


# Types whose edge points from the dependency to the dependent, the reverse of the others.
WHOLE_RELIES_ON_PART = (RelationshipType.PART_OF.value,)

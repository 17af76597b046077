"""A believable bank estate for demonstrations: teams, environments, a few hundred CIs and their links."""

import random
from typing import Any

TEAMS = [
    ("Payments", "payments"),
    ("Ledger", "ledger"),
    ("Cards", "cards"),
    ("Customer", "customer"),
    ("Digital Channels", "digital"),
    ("Platform", "platform"),
    ("Data", "data"),
    ("Network", "network"),
    ("Security", "security"),
]
ENVIRONMENTS = [  # name, position, is_production, region, owner team
    ("dev", 0, False, "", "platform"),
    ("test", 1, False, "", "platform"),
    ("staging", 2, False, "eu-west-2", "platform"),
    ("prod", 3, True, "", "platform"),
]
REGIONS = ["eu-west-2", "us-east-1"]

# name, owner team, tier, dependencies (by service name), databases, queues, compliance
SERVICES = [
    (
        "payments-api",
        "payments",
        1,
        ["auth-service", "payment-router", "fraud-scoring"],
        ["payments"],
        ["payment-events"],
        {"sox_scoped", "pci"},
    ),
    (
        "payment-router",
        "payments",
        1,
        ["ledger-posting", "fx-rates", "sanctions-screening"],
        ["payments"],
        ["payment-events"],
        {"sox_scoped", "pci"},
    ),
    ("payments-gateway", "payments", 1, ["payments-api"], [], [], {"pci"}),
    ("sepa-connector", "payments", 1, ["payment-router"], [], ["payment-events"], {"sox_scoped"}),
    ("faster-payments-connector", "payments", 1, ["payment-router"], [], ["payment-events"], {"sox_scoped"}),
    ("swift-connector", "payments", 2, ["payment-router", "sanctions-screening"], [], [], {"sox_scoped"}),
    ("fraud-scoring", "security", 1, ["feature-store"], ["fraud"], [], {"pci"}),
    ("sanctions-screening", "security", 1, [], ["sanctions"], [], {"sox_scoped"}),
    ("auth-service", "security", 1, [], ["identity"], [], set()),
    ("ledger-service", "ledger", 1, ["auth-service"], ["ledger"], ["ledger-postings"], {"sox_scoped"}),
    ("ledger-posting", "ledger", 1, ["ledger-service"], ["ledger"], ["ledger-postings"], {"sox_scoped"}),
    ("reconciliation", "ledger", 2, ["ledger-service", "statement-service"], ["ledger"], [], {"sox_scoped"}),
    ("general-ledger-export", "ledger", 2, ["ledger-service"], [], [], {"sox_scoped"}),
    ("fx-rates", "ledger", 2, [], ["reference"], [], set()),
    (
        "card-authorisation",
        "cards",
        1,
        ["card-tokenisation", "fraud-scoring", "ledger-posting"],
        ["cards"],
        ["card-events"],
        {"pci", "sox_scoped"},
    ),
    ("card-issuing", "cards", 2, ["card-tokenisation", "customer-profile"], ["cards"], ["card-events"], {"pci"}),
    ("card-tokenisation", "cards", 1, ["auth-service"], ["vault"], [], {"pci"}),
    ("chargebacks", "cards", 3, ["card-authorisation", "ledger-service"], ["cards"], [], {"pci"}),
    ("customer-profile", "customer", 1, ["auth-service"], ["customer"], ["customer-events"], {"phi"}),
    ("kyc-service", "customer", 2, ["customer-profile", "sanctions-screening"], ["customer"], [], {"phi"}),
    ("consent-service", "customer", 2, ["customer-profile"], ["customer"], [], {"phi"}),
    ("notifications", "customer", 3, ["customer-profile"], [], ["notification-jobs"], set()),
    ("statement-service", "customer", 2, ["ledger-service", "customer-profile"], ["statements"], [], {"sox_scoped"}),
    ("online-banking-web", "digital", 1, ["mobile-bff"], [], [], set()),
    (
        "mobile-bff",
        "digital",
        1,
        ["auth-service", "payments-api", "customer-profile", "statement-service", "card-issuing"],
        [],
        [],
        set(),
    ),
    (
        "open-banking-api",
        "digital",
        2,
        ["auth-service", "payments-api", "customer-profile", "consent-service"],
        [],
        [],
        {"sox_scoped"},
    ),
    ("feature-store", "data", 2, [], ["analytics"], ["customer-events", "payment-events"], set()),
    ("reporting-warehouse", "data", 3, ["general-ledger-export"], ["analytics"], [], {"sox_scoped"}),
    ("regulatory-reporting", "data", 2, ["reporting-warehouse", "reconciliation"], [], [], {"sox_scoped"}),
]
APPLICATIONS = [  # application, owner team, its component services, tier
    (
        "retail-payments",
        "payments",
        [
            "payments-api",
            "payment-router",
            "payments-gateway",
            "sepa-connector",
            "faster-payments-connector",
            "swift-connector",
        ],
        1,
    ),
    ("core-ledger", "ledger", ["ledger-service", "ledger-posting", "reconciliation", "general-ledger-export"], 1),
    ("card-platform", "cards", ["card-authorisation", "card-issuing", "card-tokenisation", "chargebacks"], 1),
    ("digital-banking", "digital", ["online-banking-web", "mobile-bff", "open-banking-api", "notifications"], 1),
    ("customer-hub", "customer", ["customer-profile", "kyc-service", "consent-service", "statement-service"], 2),
]
DATABASES = {  # logical database -> owner team, engine, compliance
    "payments": ("payments", "postgresql", {"sox_scoped", "pci"}),
    "fraud": ("security", "postgresql", {"pci"}),
    "sanctions": ("security", "postgresql", set()),
    "identity": ("security", "postgresql", set()),
    "ledger": ("ledger", "oracle", {"sox_scoped"}),
    "reference": ("ledger", "postgresql", set()),
    "cards": ("cards", "postgresql", {"pci"}),
    "vault": ("cards", "hsm-backed-postgresql", {"pci"}),
    "customer": ("customer", "postgresql", {"phi"}),
    "statements": ("customer", "postgresql", {"sox_scoped"}),
    "analytics": ("data", "snowflake", set()),
}
QUEUES = {
    "payment-events": "payments",
    "ledger-postings": "ledger",
    "card-events": "cards",
    "customer-events": "customer",
    "notification-jobs": "customer",
}
PROD_HOSTS_PER_REGION = 70
STAGING_HOSTS = 12


def estate_document(seed: int = 7) -> dict[str, list[dict[str, Any]]]:
    """The estate as an import document ({"cis": [...], "relationships": [...]}), the same on every call."""
    rng = random.Random(seed)  # noqa: S311 (repeatable demo data, not security)
    cis: list[dict[str, Any]] = []
    rels: list[dict[str, Any]] = []

    def ci(name, ci_type, team, tier, env=None, region="", flags=(), tags=(), github_repository="", **attributes):
        cis.append(
            {
                "name": name,
                "type": ci_type,
                "owner_team": team,
                "criticality": tier,
                "environment": env,
                "region": region,
                "tags": sorted(tags),
                "sox_scoped": "sox_scoped" in flags,
                "phi": "phi" in flags,
                "pci": "pci" in flags,
                "attributes": attributes,
                "github_repository": github_repository,
            }
        )

    def rel(source, rel_type, target):
        rels.append({"source": source, "type": rel_type, "target": target})

    ci("global-dns", "network", "network", 1, "prod", tags={"edge"}, provider="route53")
    ci("hsm-cluster", "cluster", "security", 1, "prod", flags={"pci"}, tags={"crypto"}, vendor="thales")
    for env, regions in (("prod", REGIONS), ("staging", ["eu-west-2"])):
        for region in regions:
            sfx = f"{env}-{region}"
            tier = 1 if env == "prod" else 3
            ci(f"core-network-{sfx}", "network", "network", tier, env, region, tags={"core"}, cidr="10.0.0.0/16")
            ci(f"edge-lb-{sfx}", "network", "network", tier, env, region, tags={"edge"})
            rel(f"edge-lb-{sfx}", "depends_on", f"core-network-{sfx}")
            rel(f"edge-lb-{sfx}", "depends_on", "global-dns")
            ci(f"k8s-{sfx}", "cluster", "platform", tier, env, region, tags={"kubernetes"}, version="1.31")
            ci(f"db-cluster-{sfx}", "cluster", "data", tier, env, region, tags={"database"})
            ci(f"kafka-{sfx}", "cluster", "platform", tier, env, region, tags={"streaming"}, brokers=6)
            ci(f"object-store-{sfx}", "storage", "platform", 2 if env == "prod" else 4, env, region, tags={"s3"})
            for cluster in (f"k8s-{sfx}", f"db-cluster-{sfx}", f"kafka-{sfx}"):
                rel(cluster, "depends_on", f"core-network-{sfx}")
            hosts = PROD_HOSTS_PER_REGION if env == "prod" else STAGING_HOSTS
            for n in range(1, hosts + 1):
                host = f"node-{sfx}-{n:02d}"
                pool = ("k8s", "db-cluster", "kafka")[n % 3]
                ci(
                    host,
                    "host",
                    "platform",
                    tier + 1,
                    env,
                    region,
                    tags={pool},
                    cpu=rng.choice([16, 32, 64]),
                    memory_gb=rng.choice([64, 128, 256]),
                    os="rhel-9",
                )
                rel(host, "part_of", f"{pool}-{sfx}")
                rel(host, "connects_to", f"core-network-{sfx}")
            for queue, team in QUEUES.items():
                ci(f"{queue}-{sfx}", "queue", team, tier, env, region, tags={"kafka-topic"})
                rel(f"{queue}-{sfx}", "runs_on", f"kafka-{sfx}")
            for database, (team, engine, flags) in DATABASES.items():
                ci(
                    f"{database}-db-{sfx}",
                    "database",
                    team,
                    tier,
                    env,
                    region,
                    flags=flags,
                    tags={engine},
                    engine=engine,
                )
                rel(f"{database}-db-{sfx}", "runs_on", f"db-cluster-{sfx}")
                if env == "prod":
                    ci(
                        f"{database}-db-replica-{sfx}",
                        "database",
                        team,
                        2,
                        env,
                        region,
                        flags=flags,
                        tags={engine, "replica"},
                        engine=engine,
                    )
                    rel(f"{database}-db-replica-{sfx}", "depends_on", f"{database}-db-{sfx}")
                    rel(f"{database}-db-replica-{sfx}", "runs_on", f"db-cluster-{sfx}")
    for name, team, tier, deps, databases, queues, flags in SERVICES:
        ci(
            name,
            "service",
            team,
            tier,
            None,
            "",
            flags=flags,
            tags={"microservice"},
            github_repository=f"octo-bank/{name}",
            language=rng.choice(["java", "go", "kotlin", "python"]),
        )
        for dep in deps:
            rel(name, "depends_on", dep)
        for region in REGIONS:
            sfx = f"prod-{region}"
            rel(name, "runs_on", f"k8s-{sfx}")
            for database in databases:
                rel(name, "depends_on", f"{database}-db-{sfx}")
            for queue in queues:
                rel(name, "connects_to", f"{queue}-{sfx}")
        rel(name, "runs_on", "k8s-staging-eu-west-2")
    for app, team, parts, tier in APPLICATIONS:
        ci(app, "application", team, tier, "prod", tags={"business-service"})
        for part in parts:
            rel(part, "part_of", app)
    rel("card-tokenisation", "depends_on", "hsm-cluster")
    rel("online-banking-web", "depends_on", "edge-lb-prod-eu-west-2")
    rel("online-banking-web", "depends_on", "edge-lb-prod-us-east-1")
    rel("open-banking-api", "depends_on", "edge-lb-prod-eu-west-2")
    return {"cis": cis, "relationships": rels}

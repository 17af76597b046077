"""Changeboard settings: one file, every value read from the environment (see README)."""

import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.functional import SimpleLazyObject

from governance.core.env import env_bool, env_int, env_list, env_str
from governance.core.logs import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent


def _itsm_connectors(path: str) -> list:
    """Read when first used, not as the settings load: its checks (URLs, variable names) import the apps' models."""
    from governance.itsm.config import connectors_load

    return connectors_load(path)


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY")
# Without SECRET_KEY, one-off management commands still run with a throw-away key; serving requests
# refuses to start (governance/wsgi.py, asgi.py) and `check --deploy` fails.
SECRET_KEY_IS_EPHEMERAL = not SECRET_KEY
if SECRET_KEY_IS_EPHEMERAL:
    SECRET_KEY = secrets.token_urlsafe(50)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "django_htmx",
    "cmdb",
    "releases",
    "governance",
]

MIDDLEWARE = [
    "governance.core.logs.RequestLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "governance.core.middleware.RefuseNulMiddleware",  # before the session, the first query a request makes
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "governance.audit.middleware.AuditContextMiddleware",
    "governance.evidence.read_only.AuditorReadOnlyMiddleware",  # after the session and the token's owner are known
]

ROOT_URLCONF = "governance.urls"
WSGI_APPLICATION = "governance.wsgi.application"
ASGI_APPLICATION = "governance.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# PostgreSQL is the one engine in every mode (DESIGN.md); a non-PostgreSQL URL is refused.
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/changeboard"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("DATABASE_URL must name a PostgreSQL database")
# No JIT: every query of this app is short, and PostgreSQL JIT-compiles any whose *estimated* cost passes
# jit_above_cost. The CAB queue's "awaiting my approval" test (correlated subqueries) is estimated high yet
# runs in about 20 ms; compiling it took 0.1 to 2 s a request (tests/bench/bench_cab_queue.py).
_db_options = DATABASES["default"].setdefault("OPTIONS", {})
_db_options["options"] = f"{_db_options.get('options', '')} -c jit=off".strip()

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
GUARDIAN_RAISE_403 = True
# Object permissions are for signed-in people only: no AnonymousUser row in the user table.
ANONYMOUS_USER_NAME = None

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"  # governance.landing: what awaits each role
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
# Chosen for the deployments the workers run (governance/deployments/orchestration.py), which PostgreSQL holds and
# a task only advances: a message is acknowledged once its task has run (acks_late) and given back when the worker
# process dies mid-task (reject_on_worker_lost, without which a killed child's message is acknowledged and lost),
# so a killed worker's step is delivered again; the step's lease, not the message, decides who runs it, so a second
# delivery does no harm. A worker takes one message at a time (prefetch 1), so none waits behind a long step while
# another worker is idle.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# The workers log through LOGGING (JSON lines, at LOG_LEVEL) like the web processes, not through Celery's own setup.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Redis hands an unacknowledged message to another worker after the visibility timeout: it must outlast the longest
# step (releases.models.LONGEST_STEP_SECONDS, an hour: a command's timeout, a wave's bake time), or a step still
# running would be delivered again while it runs (harmless, the lease refuses it, but a wasted worker).
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 2 * 3600)}
# How long a worker holds a deployment's step without renewing its lease (it renews every third of it): after
# that, the beat job's next pass hands the step to another worker.
DEPLOYMENT_LEASE_SECONDS = env_int("DEPLOYMENT_LEASE_SECONDS", 60)
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_QUEUE", "changeboard")
CELERY_BEAT_SCHEDULE_FILENAME = env_str("CELERY_BEAT_SCHEDULE_FILENAME", str(BASE_DIR / "data" / "beat-schedule"))
# Every periodic job is declared here and nowhere else.
CELERY_BEAT_SCHEDULE = {
    "expire-sessions": {"task": "governance.tasks.sessions_clear_expired", "schedule": 3600.0},
    "audit-seal": {"task": "governance.tasks.audit_seal_pending", "schedule": env_int("AUDIT_SEAL_SECONDS", 5)},
    "calendar-occurrences": {"task": "governance.tasks.calendar_occurrences_refresh", "schedule": 86400.0},
    "approval-reminders": {"task": "governance.tasks.approval_reminders", "schedule": 900.0},
    "approval-expiry": {"task": "governance.tasks.approval_requests_expire", "schedule": 3600.0},
    "github-reviews-resend": {"task": "governance.tasks.github_reviews_resend", "schedule": 600.0},
    "audit-checkpoint": {
        "task": "governance.tasks.audit_checkpoint",
        "schedule": env_int("AUDIT_CHECKPOINT_SECONDS", 600),
    },
    "deployments-resume-stalled": {"task": "governance.tasks.deployments_resume_stalled", "schedule": 30.0},
    # Wakes the ITSM updates whose task was lost (Redis down, a worker killed) or whose backoff is over.
    "itsm-sweep": {"task": "governance.tasks.itsm_sweep", "schedule": 10.0},
    # Brings in the incidents ServiceNow updated since the last pull (the webhook's other road).
    "itsm-incidents-pull": {"task": "governance.tasks.itsm_incidents_pull",
                            "schedule": env_int("ITSM_INCIDENTS_PULL_SECONDS", 60)},
}

# The largest request body in bytes, uploaded files aside (Django's default): the API answers 413 beyond it.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 2_621_440)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "governance.access.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Every permission class derives from ApiPermission, which answers 405 to a method a view does not serve.
    "DEFAULT_PERMISSION_CLASSES": ["governance.core.api_permissions.SignedIn"],
    # Bodies are bounded (DATA_UPLOAD_MAX_MEMORY_SIZE, MAX_JSON_DEPTH) and hold only storable text once parsed.
    "DEFAULT_PARSER_CLASSES": [
        "governance.core.parsers.BoundedJSONParser",
        "governance.core.parsers.BoundedFormParser",
        "governance.core.parsers.BoundedMultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "governance.core.pagination.StandardPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "governance.core.api_schema.ChangeboardAutoSchema",
    "EXCEPTION_HANDLER": "governance.audit.api_errors.exception_handler",
    "DEFAULT_THROTTLE_RATES": {"anon": "60/min"},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Changeboard API",
    "DESCRIPTION": "Change advisory and release governance: CMDB, changes, approvals, freezes and the gate.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Request bodies get components of their own, without the read-only fields a response has.
    "COMPONENT_SPLIT_REQUEST": True,
    # Bodies are advertised as JSON only: the form and multipart parsers of DEFAULT_PARSER_CLASSES still read
    # what a browser or an older script posts, but one schema under three media types breaks generated clients.
    # An upload declares its multipart body itself (the CMDB import).
    "PARSER_WHITELIST": ["rest_framework.parsers.JSONParser"],
    # One schema name per choice set that several fields share (status and target, risk_level and risk_levels...).
    "ENUM_NAME_OVERRIDES": {
        "ChangeStatusEnum": "governance.models.changes.ChangeStatus",
        "ChangeTypeEnum": "governance.models.changes.ChangeType",
        "RiskLevelEnum": "governance.models.changes.RiskLevel",
        "ReleaseStrategyEnum": "governance.models.changes.ReleaseStrategy",
        "CriticalityEnum": "cmdb.choices.Criticality",
        "CiTypeEnum": "cmdb.choices.CIType",
        "DeploymentStatusEnum": "releases.models.DeploymentStatus",
        "GateDecisionEnum": "governance.models.gate.GateDecision",
        "ApprovalDecisionEnum": "governance.models.changes.Decision",
        "DeploymentKindEnum": "releases.models.DeploymentKind",
        "StepKindEnum": "releases.models.StepKind",
        "StepStateEnum": "releases.models.StepState",
        "HealthCheckKindEnum": "releases.models.HealthCheck.Kind",
    },
    # The docs load nothing from another host: ReDoc's default theme names Google's Montserrat and Roboto (its
    # page, templates/drf_spectacular/redoc.html, no longer links them), so it is given the system's own fonts;
    # Swagger UI asks no online validator.
    "REDOC_UI_SETTINGS": {
        "theme": {
            "typography": {
                "fontFamily": 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif',
                "headings": {"fontFamily": 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif'},
                "code": {"fontFamily": "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace"},
            }
        }
    },
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
}
# The API's areas, as the docs group its operations: each tag, what it holds, and the first segments of the paths
# under /api/v1/ that are its. governance.core.api_schema tags every operation by its path from this; a path no
# area owns is a schema warning.
API_AREAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "CMDB": (
        "Teams, environments, configuration items and their relationships, impact, imports.",
        ("teams", "environments", "cis", "relationships", "cmdb"),
    ),
    "Changes": (
        "Change requests, their moves, approvals, retrospectives and free slots; approval policies and "
        "standard change templates.",
        ("changes", "policies", "standard-templates"),
    ),
    "Calendar": (
        "Freezes, maintenance windows, lockdowns and private calendar feeds.",
        ("freezes", "maintenance-windows", "lockdowns", "calendar-feeds"),
    ),
    "Releases": (
        "Artifacts registered once by digest, their scans and promotions; the keys each team trusts.",
        ("artifacts", "trusted-keys"),
    ),
    "Gate": (
        "The deployment check pipelines ask before every deployment (Argo Rollouts too), its status form for "
        "shell steps and Flagger, and deployments reported back.",
        ("deployment-checks", "gates", "deployments", "github"),
    ),
    "Audit": ("The ledger, its signed checkpoints and the public key that verifies them.", ("audit",)),
    "Deployments": (
        "Deployments, those pipelines report and those Changeboard runs by a plan: their waves, steps, checks and "
        "log; start, pause, resume, abort and approve the next wave. The plans they run by.",
        ("rollouts", "deployment-plans"),
    ),
    "ITSM": (
        "Incidents brought in from the ITSM tools, the deployments suspected of causing them, and the connectors "
        "that keep the tools in step.",
        ("incidents", "itsm"),
    ),
}
SPECTACULAR_SETTINGS["TAGS"] = [{"name": name, "description": text} for name, (text, _) in API_AREAS.items()]

# Change approvals: how long an emergency change may wait for its retrospective review, when approvers are
# reminded, and when an unanswered approval request expires.
EMERGENCY_RETROSPECTIVE_BUSINESS_DAYS = env_int("EMERGENCY_RETROSPECTIVE_BUSINESS_DAYS", 2)
APPROVAL_REMINDER_HOURS = env_int("APPROVAL_REMINDER_HOURS", 24)
APPROVAL_REQUEST_EXPIRY_DAYS = env_int("APPROVAL_REQUEST_EXPIRY_DAYS", 14)

# GitHub deployment protection rules: Changeboard answers as a GitHub App (README, "GitHub environments").
GITHUB_API_URL = env_str("GITHUB_API_URL", "https://api.github.com").rstrip("/")
GITHUB_APP_ID = env_str("GITHUB_APP_ID", "")
GITHUB_APP_PRIVATE_KEY = env_str("GITHUB_APP_PRIVATE_KEY", "")
GITHUB_APP_PRIVATE_KEY_FILE = env_str("GITHUB_APP_PRIVATE_KEY_FILE", "")
GITHUB_WEBHOOK_SECRET = env_str("GITHUB_WEBHOOK_SECRET", "")
GITHUB_GATE_ACCOUNT = env_str("GITHUB_GATE_ACCOUNT", "github")
GITHUB_REVIEW_RETRY_SECONDS = env_int("GITHUB_REVIEW_RETRY_SECONDS", 5)

# The Ed25519 key that signs audit checkpoints: PEM or base64 seed in AUDIT_SIGNING_KEY, or a PEM file.
AUDIT_SIGNING_KEY = env_str("AUDIT_SIGNING_KEY", "")
AUDIT_SIGNING_KEY_FILE = env_str("AUDIT_SIGNING_KEY_FILE", "")
# Where evidence bundles are written, one zip each (the bundle's row keeps its size and SHA-256).
EVIDENCE_DIR = env_str("EVIDENCE_DIR", str(BASE_DIR / "data" / "evidence"))
# ITSM connectors (governance/itsm/config.py): a JSON file lists them, their credentials the names of environment
# variables; without the file, none. Read once, when first used (a mistake in it names the connector and field).
ITSM_CONFIG_FILE = env_str("ITSM_CONFIG_FILE", "")
ITSM_CONNECTORS = SimpleLazyObject(lambda: _itsm_connectors(ITSM_CONFIG_FILE))
# The outbound relay (governance/itsm/relay.py): attempts before an update is failed and waits for an administrator,
# the backoff between attempts (full jitter over base * 2**n, capped; a longer Retry-After wins), and how long a
# worker holds updates it delivers before another may take them over.
ITSM_MAX_ATTEMPTS = env_int("ITSM_MAX_ATTEMPTS", 8)
ITSM_RETRY_BASE_MS = env_int("ITSM_RETRY_BASE_MS", 2000)
ITSM_RETRY_CAP_SECONDS = env_int("ITSM_RETRY_CAP_SECONDS", 600)
ITSM_LEASE_SECONDS = env_int("ITSM_LEASE_SECONDS", 60)
# How far back before an incident opened a production deployment is a suspect (governance/itsm/correlation.py).
ITSM_SUSPECT_WINDOW_HOURS = env_int("ITSM_SUSPECT_WINDOW_HOURS", 72)
# Trust X-Forwarded-For for the client address recorded in the ledger (only behind your own proxy).
USE_X_FORWARDED_FOR = env_bool("USE_X_FORWARDED_FOR", False)

EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
# Where the file-based backend (django.core.mail.backends.filebased.EmailBackend) writes each message.
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", str(BASE_DIR / "data" / "mail"))
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "changeboard@localhost")
# The site's address as people reach it, for the links in e-mail (a mail client cannot follow a relative link).
CHANGEBOARD_BASE_URL = env_str("CHANGEBOARD_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
if not CHANGEBOARD_BASE_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured(f"CHANGEBOARD_BASE_URL={CHANGEBOARD_BASE_URL!r} must start with http:// or https://")

# Production hardening: on unless DEBUG, each overridable for a TLS-terminating proxy.
_secure = not DEBUG
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", _secure)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", _secure)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", _secure)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if _secure else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOG_FORMAT = env_str("LOG_FORMAT", "json")
if LOG_FORMAT not in ("json", "console"):
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r} must be json or console")
LOGGING = logging_config(level=LOG_LEVEL, fmt=LOG_FORMAT)

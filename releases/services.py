"""Writes about artifacts: registering a build once, trusting signing keys, recording scans and promotions."""


from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from cmdb.models import ConfigurationItem, Environment, Team
from governance.core.actors import ActingUser
from governance.core.credentials import CredentialScope, require_scope
from governance.core.ed25519 import key_id, load_public_key_pem, signature_valid
from governance.core.errors import Conflict, Forbidden, InvalidInput
from releases.models import (
    Artifact,
    Deployment,
    DeploymentKind,
    Promotion,
    ScanResult,
    SignatureStatus,
    TrustedKey,
)
from releases.selectors import deployment_of_check
from releases.workflow import end_refusal


def _public_key(pem: str) -> Ed25519PublicKey:
    try:
        return load_public_key_pem(pem)
    except (ValueError, TypeError):
        raise InvalidInput("Not an Ed25519 public key in PEM: only Ed25519 keys are trusted.",
                           field="public_key_pem") from None


def trusted_key_add(*, actor: ActingUser, team: Team, name: str, public_key_pem: str) -> TrustedKey:
    if not actor.has_perm("releases.add_trustedkey"):
        raise Forbidden("Only administrators manage the keys a team trusts.")
    key = _public_key(public_key_pem)
    try:
        with transaction.atomic():
            return TrustedKey.objects.create(team=team, name=name.strip(), public_key_pem=public_key_pem.strip(),
                                             key_id=key_id(key))
    except IntegrityError:
        raise Conflict("This key, or a key of this name, is already trusted.", field="public_key_pem") from None


def signature_check(service: ConfigurationItem, digest: str, signature: str) -> tuple[str, TrustedKey | None]:
    """Whether `signature` over `digest` comes from a key the service's owner team trusts."""
    if not signature:
        return SignatureStatus.UNSIGNED, None
    keys = list(TrustedKey.objects.filter(team_id=service.owner_team_id, revoked_at__isnull=True))
    for key in keys:
        if signature_valid(load_public_key_pem(key.public_key_pem), digest.encode(), signature):
            return SignatureStatus.VALID, key
    return (SignatureStatus.INVALID if keys else SignatureStatus.UNTRUSTED), None


def artifact_register(*, actor: ActingUser, scope: CredentialScope | None = None, service: ConfigurationItem,
                      version: str, digest: str, source_commit: str = "",
                      build_url: str = "", signature: str = "", provenance: dict | None = None) -> Artifact:
    """Register a build. The same version and digest again is the same artifact (pipelines retry); the same
    version with another digest is a rebuild, and refused."""
    if not actor.has_perm("releases.add_artifact"):
        raise Forbidden("Registering artifacts is for pipelines and administrators.")
    require_scope(scope, service=service)
    existing = _registered(service, version, digest)
    if existing is not None:
        return existing
    artifact = Artifact(service=service, version=version, digest=digest, source_commit=source_commit,
                        build_url=build_url, created_by=actor, signature=signature, provenance=provenance or {})
    artifact.full_clean(exclude=["created_by", "service", "signed_by"], validate_unique=False)
    artifact.signature_status, artifact.signed_by = signature_check(service, digest, signature)
    try:
        with transaction.atomic():
            artifact.save()
    except IntegrityError:  # the same build registered at the same moment: answer as for a retry or a rebuild
        registered = _registered(service, version, digest)
        if registered is None:
            raise
        return registered
    return artifact


def _registered(service: ConfigurationItem, version: str, digest: str) -> Artifact | None:
    """The artifact already registered as this build; a conflict if the version or the digest names another.
    One statement reads both, so a registration committed meanwhile is seen whole, never as its digest alone."""
    found = list(Artifact.objects.filter(Q(service=service, version=version) | Q(digest=digest))[:2])
    existing = next((a for a in found if a.service_id == service.pk and a.version == version), None)
    if existing is not None:
        if existing.digest != digest:
            raise Conflict(f"{service} {version} was built as {existing.digest}: rebuilds are refused; "
                           "give the new build a new version.", field="digest", code="rebuild_refused")
        return existing
    if found:
        raise Conflict("This digest is already registered for another version.", field="digest")
    return None


def artifact_promote(*, actor: ActingUser, scope: CredentialScope | None = None, artifact: Artifact,
                     environment: Environment) -> Promotion:
    """Record that the artifact passed `environment`; it must have passed the environment before it."""
    if not actor.has_perm("releases.add_promotion"):
        raise Forbidden("Recording promotions is for pipelines and administrators.")
    require_scope(scope, service=artifact.service, environment=environment)
    previous = Environment.objects.filter(position__lt=environment.position).order_by("-position").first()
    with transaction.atomic():
        if previous is not None and not Promotion.objects.filter(artifact=artifact, environment=previous).exists():
            raise Conflict(f"{artifact} has not passed {previous} yet: it is promoted one environment at a time.",
                           field="environment", code="promotion_out_of_order")
        promotion, _ = Promotion.objects.get_or_create(
            artifact=artifact, environment=environment, defaults={"recorded_by": actor, "passed_at": timezone.now()})
    return promotion


def scan_attach(*, actor: ActingUser, scope: CredentialScope | None = None, artifact: Artifact, kind: str, tool: str,
                verdict: str, critical: int = 0, high: int = 0,
                medium: int = 0, low: int = 0, report_url: str = "") -> ScanResult:
    if not actor.has_perm("releases.add_scanresult"):
        raise Forbidden("Recording scans is for pipelines and administrators.")
    require_scope(scope, service=artifact.service)
    scan = ScanResult(artifact=artifact, kind=kind, tool=tool, verdict=verdict, critical=critical, high=high,
                      medium=medium, low=low, report_url=report_url, recorded_by=actor)
    scan.full_clean(exclude=["artifact", "recorded_by"])
    scan.save()
    return scan


def deployment_record(*, actor: ActingUser, service: ConfigurationItem, environment: Environment, artifact: Artifact,
                      change_number: str, check_id) -> tuple[Deployment, bool]:
    """Record that `artifact` starts deploying under the gate's check `check_id` (the gate decided it may): one
    deployment at a time per service and environment, one per check. The same start recorded at the same moment
    (the pipeline and GitHub reporting it) is one deployment, for both. True when recorded now."""
    try:
        with transaction.atomic():
            return Deployment.objects.create(
                service=service, environment=environment, artifact=artifact, change_number=change_number,
                check_id=check_id, reported_by=actor), True
    except IntegrityError:
        recorded = deployment_of_check(check_id)
        if recorded is not None:
            return recorded, False
        raise Conflict(f"Another deployment holds {service} in {environment}.", field="check_id",
                       code="environment_locked") from None


def deployment_end(deployment: Deployment, status: str) -> Deployment:
    """End a running deployment a pipeline reported as `status`, as the lifecycle's table allows; two ends at once
    record one. A deployment Changeboard runs ends by its own steps only."""
    with transaction.atomic():
        deployment = (Deployment.objects.select_for_update(of=("self",))
                      .select_related("service", "environment", "artifact").get(pk=deployment.pk))
        if deployment.kind == DeploymentKind.RUN:
            raise Conflict(f"{deployment.number} is run by Changeboard: it ends by its own steps, or a release "
                           "manager aborts it.", field="deployment", code="run_by_changeboard")
        refusal = end_refusal(deployment.status, status)
        if refusal:
            raise Conflict(f"{deployment.number} {refusal}.", field="status")
        deployment.status, deployment.finished_at = status, timezone.now()
        deployment.save(update_fields=["status", "finished_at"])
    return deployment

import time
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from governance.audit import signing
from governance.audit.ledger import audit_seal, audit_verify
from governance.core import ed25519
from governance.evidence.verifier import verify_bundle
from governance.models import AuditCheckpoint

# Exit codes: 1 the ledger is broken (CommandError's default), 2 it could not be checked.
CANNOT_VERIFY = 2


class Command(BaseCommand):
    help = (
        "Walk the whole audit ledger and every checkpoint; name the first broken link and exit 1. "
        "Checking needs only the public key: --public-key, or the one of the configured signing key."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--public-key",
            type=Path,
            action="append",
            help="Trust this published public key (PEM, as /audit/key/ shows it) instead of the "
            "configured one; repeatable.",
        )
        parser.add_argument("--no-seal", action="store_true", help="Verify only what is sealed; do not seal first.")
        parser.add_argument(
            "--bundle",
            type=Path,
            help="Check an evidence bundle (its zip or extracted folder) offline instead of the database, as its "
            "own verifier does: the manifest's signature, every file's hash, the chain of its ledger events.",
        )

    def handle(self, *args, public_key, no_seal, bundle, **options):
        if bundle is not None:
            return self._verify_bundle(bundle, public_key)
        try:
            keys = _trusted_keys(public_key)
            if not no_seal:
                audit_seal()
            started = time.perf_counter()
            report = audit_verify(public_keys=keys)
        except DatabaseError as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CommandError(f"Cannot read the audit ledger: {reason}", returncode=CANNOT_VERIFY) from None
        elapsed = time.perf_counter() - started
        rate = report.events / elapsed if elapsed else 0
        if not report.ok:
            raise CommandError(f"AUDIT LEDGER BROKEN: {report.problem}")
        self.stdout.write(
            f"Audit ledger verified: {report.events} events up to #{report.head_seq} "
            f"(head {report.head_hash[:16]}…), {report.checkpoints} signed checkpoints, "
            f"{report.pending} awaiting seal; {elapsed:.2f} s, {rate:,.0f} events/s."
        )

    def _verify_bundle(self, bundle: Path, public_keys: list[Path] | None) -> None:
        """The bundle's own verifier, run here: no database is read."""
        if not bundle.exists():
            raise CommandError(f"--bundle: {bundle} does not exist", returncode=CANNOT_VERIFY)
        if public_keys and len(public_keys) > 1:
            raise CommandError("--bundle takes one --public-key", returncode=CANNOT_VERIFY)
        try:
            pem = public_keys[0].read_bytes() if public_keys else None
        except OSError as exc:
            raise CommandError(f"--public-key: {exc}", returncode=CANNOT_VERIFY) from None
        report = verify_bundle.verify(bundle, pem)
        self.stdout.write("\n".join(report.lines()))
        if not report.ok:
            raise CommandError(f"EVIDENCE BUNDLE BROKEN: {report.failures[0]}")


def _trusted_keys(paths: list[Path] | None) -> list:
    """The public keys checkpoints must be signed with: the files given, else the public half of the configured
    signing key. With neither, verifying the chain alone is still possible while nothing is signed."""
    if paths:
        try:
            return [ed25519.load_public_key_pem(path.read_text()) for path in paths]
        except (OSError, ValueError) as exc:
            raise CommandError(f"--public-key: {exc}", returncode=CANNOT_VERIFY) from None
    try:
        return [signing.public_key()]
    except ImproperlyConfigured as exc:
        if not AuditCheckpoint.objects.exists():
            return []
        raise CommandError(
            "No public key to check the checkpoint signatures with: pass --public-key FILE, the key published at "
            f"/audit/key/ (or /api/v1/audit/public-key/). ({exc})",
            returncode=CANNOT_VERIFY,
        ) from None

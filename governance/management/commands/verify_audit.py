import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from governance.audit.ledger import audit_seal, audit_verify
from governance.core import ed25519


class Command(BaseCommand):
    help = "Walk the whole audit ledger and every checkpoint; name the first broken link and exit non-zero."

    def add_arguments(self, parser):
        parser.add_argument("--public-key", type=Path, action="append",
                            help="Trust this published public key (PEM) instead of the configured one; repeatable.")
        parser.add_argument("--no-seal", action="store_true", help="Verify only what is sealed; do not seal first.")

    def handle(self, *args, public_key, no_seal, **options):
        keys = None
        if public_key:
            try:
                keys = [ed25519.load_public_key_pem(path.read_text()) for path in public_key]
            except (OSError, ValueError) as exc:
                raise CommandError(f"--public-key: {exc}") from None
        if not no_seal:
            audit_seal()
        started = time.perf_counter()
        report = audit_verify(public_keys=keys)
        elapsed = time.perf_counter() - started
        rate = report.events / elapsed if elapsed else 0
        if not report.ok:
            raise CommandError(f"AUDIT LEDGER BROKEN: {report.problem}")
        self.stdout.write(
            f"Audit ledger verified: {report.events} events up to #{report.head_seq} "
            f"(head {report.head_hash[:16]}…), {report.checkpoints} signed checkpoints, "
            f"{report.pending} awaiting seal; {elapsed:.2f} s, {rate:,.0f} events/s."
        )

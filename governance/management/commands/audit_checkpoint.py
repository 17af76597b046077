from django.core.management.base import BaseCommand

from governance.audit.ledger import audit_checkpoint_create


class Command(BaseCommand):
    help = "Seal what is captured and sign the head of the audit chain now."

    def handle(self, *args, **options):
        checkpoint = audit_checkpoint_create()
        if checkpoint is None:
            self.stdout.write("The ledger is empty: nothing to sign.")
            return
        self.stdout.write(f"Checkpoint {checkpoint.pk}: event #{checkpoint.seq}, head {checkpoint.head_hash}, "
                          f"key {checkpoint.key_id[:16]}…")

from django.core.management.base import BaseCommand

from governance.core.ed25519 import generate_private_key_pem


class Command(BaseCommand):
    help = "Print a new Ed25519 private key (PEM) for signing audit checkpoints; keep it out of the database."

    def handle(self, *args, **options):
        self.stdout.write(generate_private_key_pem(), ending="")

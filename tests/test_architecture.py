"""The import direction of README's Architecture section, as import-linter's contracts in pyproject.toml."""

import subprocess
import sys
from pathlib import Path

from django.conf import settings


def test_the_import_contracts_hold():
    linter = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(linter), "--no-cache"], cwd=settings.BASE_DIR, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr

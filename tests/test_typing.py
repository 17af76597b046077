"""Type checking: mypy with django-stubs and djangorestframework-stubs over the three apps, as configured in
pyproject.toml's [tool.mypy]. About 20 seconds without mypy's cache."""

import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings


@pytest.mark.typing
def test_the_apps_type_check():
    mypy = Path(sys.executable).with_name("mypy")
    done = subprocess.run([str(mypy)], cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr

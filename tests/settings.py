"""Production settings with what a test run needs: a fixed key, plain HTTP, fast hashing, plain static."""

import base64
import os
import uuid

os.environ.setdefault("SECRET_KEY", "test-only-key-never-used-outside-the-test-suite")
for name in ("SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE"):
    os.environ.setdefault(name, "false")
os.environ.setdefault("SECURE_HSTS_SECONDS", "0")
# A signing key for this run only, inherited by the processes the tests start.
os.environ.setdefault("AUDIT_SIGNING_KEY", base64.b64encode(os.urandom(32)).decode())
# A queue of this run's own, inherited by the workers the tests start, so no other worker takes its tasks.
os.environ.setdefault("CELERY_QUEUE", f"changeboard-test-{uuid.uuid4().hex[:8]}")

from governance.settings import *  # noqa: E402, F403

# Only for its `flush` command, which empties the ledger's guarded tables between transactional tests.
INSTALLED_APPS = [*INSTALLED_APPS, "tests"]  # noqa: F405
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Serve static files from the finders: a test run has no collectstatic output.
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True

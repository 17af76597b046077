"""Events that are not row writes, recorded from Django's authentication signals."""

from governance.audit.ledger import audit_record


def record_login(sender, request, user, **kwargs) -> None:
    audit_record("login", obj=user)


def record_logout(sender, request, user, **kwargs) -> None:
    if user is not None:
        audit_record("logout", obj=user)


def record_login_failed(sender, credentials, request=None, **kwargs) -> None:
    # Django has already replaced anything that looks like a secret in `credentials`.
    username = str(credentials.get("username", ""))[:150]
    audit_record("login_failed", object_type="auth.user", object_label=username, context={"username": username})

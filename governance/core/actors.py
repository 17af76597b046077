"""Who acts: the type of the `actor` every service takes."""

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User

# The signed-in person or service account a write is done for; the project keeps Django's own user model
# (no AUTH_USER_MODEL), so this is it, and `request.user` behind a login or a token is one.
ActingUser = User


def acting_user(user: AbstractBaseUser | AnonymousUser) -> ActingUser:
    """`request.user` where the view's permissions let no anonymous request in, as the actor of a service."""
    assert isinstance(user, ActingUser)  # DRF's permission classes ran before any handler
    return user

"""Who acts: the type of the `actor` every service takes."""

from django.contrib.auth.models import User

# The signed-in person or service account a write is done for; the project keeps Django's own user model
# (no AUTH_USER_MODEL), so this is it, and `request.user` behind a login or a token is one.
ActingUser = User

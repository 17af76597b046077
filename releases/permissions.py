"""Who may read what about releases; used by the pages, and by templates through `perms`."""


def can_view_releases(user) -> bool:
    return user.is_authenticated and user.has_perm("releases.view_artifact")

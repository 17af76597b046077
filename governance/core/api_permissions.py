"""The base of every API permission class, and the default one (REST_FRAMEWORK's DEFAULT_PERMISSION_CLASSES)."""

from rest_framework import exceptions, permissions

# The model permission each writing method needs; the other methods a view serves only read.
MODEL_VERBS = {"POST": "add", "PUT": "change", "PATCH": "change", "DELETE": "delete"}


class ApiPermission(permissions.BasePermission):
    """Subclasses say in `allows` who may call a view. A method the view does not serve (TRACE, PROPFIND, FOO)
    is a 405 here, before any subclass's rule or map of methods meets it."""

    def has_permission(self, request, view) -> bool:
        if request.method not in view.allowed_methods:
            raise exceptions.MethodNotAllowed(request.method)
        return self.allows(request, view)

    def allows(self, request, view) -> bool:
        raise NotImplementedError


class SignedIn(ApiPermission):
    """Anyone signed in: views whose service or own rule decides the rest."""

    def allows(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated)


def model_permission(request, model) -> str:
    """The model permission (`app.verb_model`) that writing `model` with this request's method needs."""
    return f"{model._meta.app_label}.{MODEL_VERBS[request.method]}_{model._meta.model_name}"

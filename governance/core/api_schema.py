"""The published OpenAPI schema says what the API answers: the error shape on every operation, and null or ""
wherever a response can carry them. One AutoSchema (DEFAULT_SCHEMA_CLASS) does it for every view."""

from typing import Any

from django.conf import settings
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from drf_spectacular.drainage import warn
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import permissions, serializers


class ErrorItemSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable, for programs: e.g. invalid, required, not_found, conflict.")
    message = serializers.CharField(help_text="For people.")
    field = serializers.CharField(allow_null=True, help_text="The input at fault (a body field, as a dotted path, "
                                                            "or a parameter); null when no one input is.")


class ErrorSerializer(serializers.Serializer):
    """Every refusal of the API (governance.api_errors)."""

    # DRF's metaclass takes declared fields off the class, so this does not shadow Serializer.errors as the stubs
    # think.
    errors = ErrorItemSerializer(many=True)  # type: ignore[assignment]


ERRORS = {
    "400": "The input is refused; each error names the field or parameter at fault.",
    "401": "No credentials, or a token that is unknown, expired or revoked.",
    "403": "The caller may not do this.",
    "404": "Nothing here that the caller may see (or no such page of a list).",
    "409": "The record's state refuses the request (the reason is given), other records still refer to it, or a "
           "write made at the same time won.",
}
WRITES = ("POST", "PUT", "PATCH", "DELETE")
WALL_CLOCK = r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?$"


API_PREFIX = "/api/v1/"


class ChangeboardAutoSchema(AutoSchema):
    def get_tags(self) -> list[str]:
        """The area an operation belongs to (settings.API_AREAS), from the first segment of its path under /api/v1/:
        the docs group operations by area, not all under "v1"."""
        segment = self.path.removeprefix(API_PREFIX).split("/", 1)[0]
        for area, (_, segments) in settings.API_AREAS.items():
            if segment in segments:
                return [area]
        warn(f"no API area owns {self.path}: add {segment!r} to an area of API_AREAS in the settings")
        return super().get_tags()

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is not None:
            self._add_error_responses(operation)
        return operation

    def _add_error_responses(self, operation: dict) -> None:
        """The refusals the exception handler can give this operation, in its one shape. 409 is on every write:
        besides the services' conflicts, a delete meets records that still refer to the row, and any write can
        lose a unique constraint to a concurrent one."""
        parameters = operation.get("parameters", [])
        codes = []
        if parameters or "requestBody" in operation:
            codes.append("400")
        if not all(isinstance(check, permissions.AllowAny) for check in self.view.get_permissions()):
            codes += ["401", "403"]
        if any(p["in"] == "path" for p in parameters) or self._paginates():
            codes.append("404")
        if self.method in WRITES:
            codes.append("409")
        responses = operation["responses"]
        for code in codes:
            error = self._get_response_for_code(OpenApiResponse(ErrorSerializer, description=ERRORS[code]), code)
            declared = responses.get(code)
            if declared is None:
                responses[code] = error
                continue
            for media_type, content in declared["content"].items():
                refusal = error["content"][media_type]["schema"]
                if content["schema"] != refusal:  # e.g. the status gate's 403, a denial in the answer's own shape
                    content["schema"] = {"oneOf": [content["schema"], refusal]}
        operation["responses"] = dict(sorted(responses.items()))

    def _paginates(self) -> bool:
        """A page number beyond the last is a 404 (DRF's PageNumberPagination)."""
        return self.method == "GET" and self._is_list_view() and self._get_paginator() is not None

    def _get_serializer_field_meta(self, field, direction):
        meta = super()._get_serializer_field_meta(field, direction)
        if direction == "response" and _answers_null(field):
            meta["nullable"] = True
        return meta

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if isinstance(field, serializers.TimeField) and schema.get("format") == "time":
            # A wall-clock time in the record's own time zone: no offset, which format "time" (RFC 3339) demands.
            del schema["format"]
            schema["pattern"] = WALL_CLOCK
        # A read-only field built from a model column loses the column's allow_blank (DRF drops it for read-only
        # fields), yet a draft's risk_level is "" until it is assessed.
        if (direction == "response" and isinstance(field, serializers.ChoiceField) and schema
                and "" not in schema.get("enum", [""])):
            column = _model_path(field)[-1:] or [None]
            if isinstance(column[0], models.Field) and column[0].blank:
                schema["enum"] = [*schema["enum"], ""]
        return schema


def _model_path(field: serializers.Field) -> list[Any]:
    """The model fields a serializer field reads through (`source`), as far as they can be followed."""
    model = getattr(getattr(field.parent, "Meta", None), "model", None)
    path: list[Any] = []
    if model is None or field.source == "*":
        return path
    for name in field.source_attrs:
        if model is None:
            break
        try:
            model_field = model._meta.get_field(name)
        except FieldDoesNotExist:
            break
        if model_field.one_to_many or model_field.many_to_many:  # a list, never null
            break
        path.append(model_field)
        model = model_field.related_model if model_field.many_to_one or model_field.one_to_one else None
    return path


def _answers_null(field: serializers.Field) -> bool:
    """DRF answers null where a field's source passes through a null column or relation, and answers a field's
    default where its dotted source breaks on a missing object."""
    if field.default is None:
        return True
    return any(getattr(model_field, "null", False) for model_field in _model_path(field))


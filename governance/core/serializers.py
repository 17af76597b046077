"""Serializer plumbing: the input serializers' one base, the field types every looked-up and jsonb value goes
through, and the model's own row rules run so the API and forms share one place for them."""

from collections.abc import Mapping
from copy import copy

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail
from rest_framework.relations import MANY_RELATION_KWARGS, ManyRelatedField

from governance.core.inputs import MAX_NAMES_PER_LIST, json_refusal, text_fault

# Enough to name every mistake a person makes; a body of nothing but unknown keys is not listed key by key.
MAX_UNKNOWN_FIELDS_NAMED = 20


class StrictInputMixin:
    """Refuse what a serializer would otherwise drop without a word: a field it does not know (a typo, a field of
    another endpoint) or one it only reads (an id, a timestamp), each named, with code unknown_field or read_only.
    The base of every input serializer; the gate's dialect endpoints (Flagger's, GitHub's) read third-party
    payloads and take what they need from them instead."""

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            refused = {}
            for name in data:
                field = self.fields.get(name)
                if field is None:
                    refused[name] = [ErrorDetail("This field is unknown here.", code="unknown_field")]
                elif field.read_only:
                    refused[name] = [ErrorDetail("This field is read-only: it cannot be set.", code="read_only")]
                if len(refused) == MAX_UNKNOWN_FIELDS_NAMED:
                    break
            if refused:
                raise serializers.ValidationError(refused)
        return super().to_internal_value(data)


class StorableJSONField(serializers.JSONField):
    """JSON kept in a jsonb column: nested at most MAX_JSON_DEPTH levels, no NUL (PostgreSQL refuses one in jsonb)
    and no unpaired surrogate, in any key or value at any depth. The API's parser refuses these in JSON bodies
    already; this field names its own input for bodies sent as forms, and says what it stores."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        refusal = json_refusal(value)
        if refusal:
            where = f" (at {refusal.path})" if refusal.path else ""
            raise serializers.ValidationError(f"{refusal.message}{where}", code=refusal.code)
        return value


@extend_schema_field(OpenApiTypes.OBJECT)
class StorableJSONObjectField(StorableJSONField):
    default_error_messages = {"not_an_object": "Give a JSON object."}

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not isinstance(value, dict):
            self.fail("not_an_object")
        return value


class LookupField(serializers.SlugRelatedField):
    """A record the input names (by name, slug or username) rather than stores. The value is checked before any
    query reads it: text, no NUL or surrogate, no longer than the column it is matched against. With many=True
    it is a LookupListField: at most `max_items` names (MAX_NAMES_PER_LIST unless given), found in one query."""

    default_error_messages = {
        "invalid": "Give the {slug_name} as text.",
        "too_long": "No {slug_name} is longer than {max_length} characters.",
        "does_not_exist": "Nothing has the {slug_name} {value!r}.",
    }

    @classmethod
    def many_init(cls, *args, max_items: int = MAX_NAMES_PER_LIST, **kwargs):
        list_kwargs = {key: value for key, value in kwargs.items() if key in MANY_RELATION_KWARGS}
        return LookupListField(child_relation=cls(*args, **kwargs), max_items=max_items, **list_kwargs)

    def to_internal_value(self, data):
        key = self.checked(data)
        found, missing = self.find([key])
        if missing:
            self.fail("does_not_exist", slug_name=self.slug_field, value=key[:100])
        return found[0]

    def _records(self) -> models.QuerySet:
        queryset = self.get_queryset()
        assert queryset is not None  # DRF refuses a writable related field without one, and only those look up
        return queryset

    def checked(self, data) -> str:
        """`data` as a key to look up, or a ValidationError saying why no record can have it."""
        if not isinstance(data, str):
            self.fail("invalid", slug_name=self.slug_field)
        fault = text_fault(data)
        if fault:
            raise serializers.ValidationError(fault.message, code=fault.code)
        max_length = self._records().model._meta.get_field(self.slug_field).max_length
        if max_length is not None and len(data) > max_length:
            self.fail("too_long", slug_name=self.slug_field, max_length=max_length)
        return data

    def find(self, keys: list[str]) -> tuple[list, list[str]]:
        """The records of these checked keys in one query, in the order given; and the keys no record has."""
        found = {getattr(record, self.slug_field): record
                 for record in self._records().filter(**{f"{self.slug_field}__in": set(keys)})}
        return [found[key] for key in keys if key in found], [key for key in keys if key not in found]


class LookupListField(ManyRelatedField):
    """A list of LookupField names: its length checked first, then every name, then one query for them all."""

    default_error_messages = {
        "too_many": "Name at most {max_items} here; {count} were given.",
        "does_not_exist": "Nothing has the {slug_name} {values}.",
    }

    def __init__(self, *, max_items: int, **kwargs):
        self.max_items = max_items
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, list | tuple):
            self.fail("not_a_list", input_type=type(data).__name__)
        if not self.allow_empty and not data:
            self.fail("empty")
        if len(data) > self.max_items:
            self.fail("too_many", max_items=self.max_items, count=len(data))
        keys = []
        for index, item in enumerate(data):
            try:
                keys.append(self.child_relation.checked(item))
            except serializers.ValidationError as exc:
                raise serializers.ValidationError({index: exc.detail}) from None
        found, missing = self.child_relation.find(keys)
        if missing:
            shown = ", ".join(repr(key[:100]) for key in missing[:10])
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            self.fail("does_not_exist", slug_name=self.child_relation.slug_field, values=shown + more)
        return found


class LookupListFieldSchema(OpenApiSerializerFieldExtension):
    """The schema states a list's maximum, as the field enforces it."""

    target_class = LookupListField

    def map_serializer_field(self, auto_schema, direction):
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        return {**schema, "maxItems": self.target.max_items}


class InputSerializer(StrictInputMixin, serializers.Serializer):
    """The base of an input serializer that is no model's."""


class InputModelSerializer(StrictInputMixin, serializers.ModelSerializer):
    """The base of an input serializer of a model: strict, and its jsonb columns are StorableJSONFields."""

    serializer_field_mapping = {**serializers.ModelSerializer.serializer_field_mapping,
                                models.JSONField: StorableJSONField}


class ModelRulesSerializer(InputModelSerializer):
    """A ModelSerializer that also runs `Model.clean()`, unique checks and the model's constraints."""

    def validate(self, attrs):
        attrs = super().validate(attrs)
        meta = self.Meta.model._meta
        single = [name for name in attrs if not meta.get_field(name).many_to_many]
        candidate = copy(self.instance) if self.instance is not None else self.Meta.model()
        for name in single:
            setattr(candidate, name, attrs[name])
        try:
            candidate.clean()
            candidate.validate_unique()
            candidate.validate_constraints()
        except DjangoValidationError as exc:
            raise serializers.ValidationError(serializers.as_serializer_error(exc)) from None
        # clean() may normalise values (e.g. sorted tags): keep what it decided.
        return {**attrs, **{name: getattr(candidate, name) for name in single}}


def validated(serializer_class, data, *, partial: bool = False) -> dict:
    """The input checked by `serializer_class`; a 400 naming each field at fault otherwise."""
    return validated_by(serializer_class(partial=partial), data)


def validated_by(serializer: serializers.Serializer, data) -> dict:
    """The input checked by `serializer`, which may serve many requests: it keeps no state between them."""
    try:
        return dict(serializer.run_validation(data))
    except serializers.ValidationError as exc:
        raise serializers.ValidationError(serializers.as_serializer_error(exc)) from None

"""Serializer plumbing: run the model's own row rules so the API and forms share one place for them."""

from copy import copy

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers


class ModelRulesSerializer(serializers.ModelSerializer):
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

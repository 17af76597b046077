"""The names refusals give a model's fields."""

from django.db.models import Field, Model


def field_label(model: type[Model], name: str) -> str:
    """The verbose name of one of `model`'s own fields, as its forms label it."""
    field = model._meta.get_field(name)
    assert isinstance(field, Field)  # a refusal names a field of the row, never a relation back to it
    return str(field.verbose_name)

"""A condition written once with the ORM, compiled to SQL for a hand-written statement (the gate's function)."""

from django.db import connection
from django.db.models import Q
from django.db.models.sql import Query


def condition_sql(model, condition: Q) -> str:
    """`condition` over `model`'s table (named by its table name, not an alias) as SQL text. It must hold no
    parameters: the values it compares with are SQL of their own, given as `RawSQL(..., [])`."""
    query = Query(model)
    sql, params = query.build_where(condition).as_sql(query.get_compiler(connection=connection), connection)
    if params:
        raise ValueError(f"{condition!r} compiles with parameters {params!r}; give its values as SQL")
    return sql

"""The gate's offers on other apps' pages, decided by the gate's own permission predicates."""

from django import template

from governance.gate.permissions import can_end_deployment

register = template.Library()
register.filter("may_end_deployments", can_end_deployment)

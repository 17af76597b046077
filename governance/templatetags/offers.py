"""`{% offer "name" arg... as var %}`: what another area offers on this page (governance.core.offers)."""

from django import template

from governance.core.offers import offer as answer

register = template.Library()


@register.simple_tag(takes_context=True)
def offer(context, name: str, *args):
    return answer(name, context["request"].user, *args)

"""The changes' offers on other areas' pages (governance.core.offers)."""

from django.urls import reverse

from governance.core.offers import register_offer


def _change(user, number: str) -> str:
    return reverse("governance:change_detail", args=[number])


register_offer("change", _change)

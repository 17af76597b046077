"""What an area offers on another area's pages: the page asks for an offer by name, and the area that owns it
answers (a URL, or whether this user may act), so a lower app's templates name no higher app's URLs or rules.
Areas register their offers when the project starts (governance.apps); templates read them with `{% offer %}`."""

from collections.abc import Callable
from typing import Any

_OFFERS: dict[str, Callable[..., Any]] = {}


def register_offer(name: str, answer: Callable[..., Any]) -> None:
    """`answer(user, *args)` is the offer to this user: a URL, or None (or False) when there is none for them."""
    _OFFERS[name] = answer


def offer(name: str, user, *args) -> Any:
    return _OFFERS[name](user, *args)

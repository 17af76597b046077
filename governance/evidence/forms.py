"""Forms of the auditor's workspace pages."""

import secrets
from collections.abc import Callable
from typing import TypeVar

from django import forms

from governance.core.errors import DomainError, refuse_if_forbidden
from governance.evidence.period import Period, period_from
from governance.evidence.samples import SEED_MAX
from governance.models import EvidenceScope

T = TypeVar("T")


class PeriodForm(forms.Form):
    """A period and a scope; the period itself is read by period_from, which names what is wrong with it."""

    start = forms.CharField(max_length=40, widget=forms.DateInput(attrs={"type": "date"}),
                            help_text="The first day (or an ISO moment).")
    end = forms.CharField(max_length=40, widget=forms.DateInput(attrs={"type": "date"}),
                          help_text="The last day, counted whole (or an ISO moment, exclusive).")
    scope = forms.ChoiceField(choices=EvidenceScope.choices, initial=EvidenceScope.ALL)

    def period(self) -> Period | None:
        """The valid form's period; None, with the refusal put on the field it names, when there is none."""
        if not self.is_valid():
            return None
        data = self.cleaned_data
        try:
            return period_from(data["start"], data["end"], data["scope"])
        except DomainError as exc:
            self.add_error(exc.field if exc.field in self.fields else None, exc.message)
            return None


class SampleForm(PeriodForm):
    """A period, a scope and a seed to draw a sample with."""

    seed = forms.IntegerField(min_value=0, max_value=SEED_MAX,
                              help_text="Write it down: the same period, scope and seed draw the same sample.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # A fresh seed is offered; the auditor may keep it or type their own.
        self.fields["seed"].initial = secrets.randbelow(1_000_000_000)

    def submitted(self, act: Callable[..., T]) -> T | None:
        """`act(period=..., seed=...)` with the form's values (a sample drawn, a bundle requested); None, with the
        refusal put on the field it names, when the form or the service refuses. A 403 stays a 403."""
        period = self.period()
        if period is None:
            return None
        try:
            return act(period=period, seed=self.cleaned_data["seed"])
        except DomainError as exc:
            refuse_if_forbidden(exc)
            self.add_error(exc.field if exc.field in self.fields else None, exc.message)
            return None

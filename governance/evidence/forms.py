"""Forms of the auditor's workspace pages."""

import secrets

from django import forms

from governance.evidence.samples import SEED_MAX
from governance.models import EvidenceScope


class PeriodForm(forms.Form):
    """A period and a scope; the period itself is read by period_from, which names what is wrong with it."""

    start = forms.CharField(max_length=40, widget=forms.DateInput(attrs={"type": "date"}),
                            help_text="The first day (or an ISO moment).")
    end = forms.CharField(max_length=40, widget=forms.DateInput(attrs={"type": "date"}),
                          help_text="The last day, counted whole (or an ISO moment, exclusive).")
    scope = forms.ChoiceField(choices=EvidenceScope.choices, initial=EvidenceScope.ALL)


class SampleForm(PeriodForm):
    """A period, a scope and a seed to draw a sample with."""

    seed = forms.IntegerField(min_value=0, max_value=SEED_MAX,
                              help_text="Write it down: the same period, scope and seed draw the same sample.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # A fresh seed is offered; the auditor may keep it or type their own.
        self.fields["seed"].initial = secrets.randbelow(1_000_000_000)

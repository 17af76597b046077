"""The start form: a change, one of the plans for its services and environment, and a build of the plan's service."""

from django import forms

from governance.deployments.selectors import plans_for
from governance.models.changes import ChangeRequest
from releases.models import Artifact, DeploymentPlan


class BuildChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj) -> str:
        return f"{obj.service.name} {obj.version}"


class DeploymentStartForm(forms.Form):
    change = forms.CharField(max_length=12, help_text="e.g. CHG0000123")
    plan = forms.ModelChoiceField(queryset=DeploymentPlan.objects.none(), empty_label="Pick a plan")
    artifact = BuildChoiceField(queryset=Artifact.objects.none(), to_field_name="digest", label="Build",
                                empty_label="Pick a build")

    def __init__(self, *args, change: ChangeRequest | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        plans = plans_for()
        if change is not None:
            # The plans for the change's services in its environment.
            plans = plans.filter(service__in=change.affected_cis.all(), environment_id=change.environment_id)
            self.fields["change"].initial = change.number
        plan, artifact = self.fields["plan"], self.fields["artifact"]
        assert isinstance(plan, forms.ModelChoiceField) and isinstance(artifact, forms.ModelChoiceField)
        plan.queryset = plans
        artifact.queryset = (Artifact.objects.filter(service__in=plans.values("service")).select_related("service")
                             .order_by("service__name", "-created_at"))

    def clean_change(self) -> ChangeRequest:
        number = self.cleaned_data["change"].strip().upper()
        change = ChangeRequest.objects.filter(number=number).first()
        if change is None:
            raise forms.ValidationError(f"No change has the number {number}.")
        return change

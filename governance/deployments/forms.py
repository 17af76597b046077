"""The start form: a change, one of the plans for its services and environment, and a build of the plan's service;
and the plan editor's forms."""

import json
from dataclasses import asdict
from typing import Any

from django import forms

from cmdb.models import ConfigurationItem, Environment
from governance.core.inputs import JSONRefused, WordListField, json_parsed
from governance.deployments import plans
from governance.deployments.selectors import plans_for
from governance.models.changes import ChangeRequest
from releases.models import (
    LONGEST_STEP_SECONDS,
    Artifact,
    CheckPhase,
    DeploymentPlan,
    ExecutorKind,
    HealthCheck,
)


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
        if change is not None:
            # What there is to pick when the change leaves one choice: its one plan, its one approved build.
            only_plans = list(plans[:2])
            if len(only_plans) == 1:
                plan.initial = only_plans[0].pk
            if len(change.pinned_digests) == 1:
                artifact.initial = change.pinned_digests[0]

    def clean_change(self) -> ChangeRequest:
        number = self.cleaned_data["change"].strip().upper()
        change = ChangeRequest.objects.filter(number=number).first()
        if change is None:
            raise forms.ValidationError(f"No change has the number {number}.")
        return change


# --- the plan editor: it parses what the browser sends; governance.deployments.plans decides what a plan may be ----

# What each executor's settings hold, with an example the editor shows beside the JSON.
EXECUTOR_HELP: dict[str, dict[str, Any]] = {
    ExecutorKind.COMMAND: {
        "help": "forward and backward: the command deploying a wave and the one rolling it back, as argument lists "
                "(no shell); {targets} as a whole argument becomes one argument per target, and {digest}, "
                "{previous_digest}, {environment}, {wave}, {deployment} and {key} are filled in. check (optional): "
                "a command telling whether an interrupted rollout happened (exit 0 yes, 1 no). timeout_seconds "
                "(optional, default 600): at most 3600.",
        "example": {"forward": ["/opt/deploy/rollout.sh", "--image", "registry.example.com/shop-api@{digest}",
                                "{targets}"],
                    "backward": ["/opt/deploy/rollout.sh", "--image", "registry.example.com/shop-api@{previous_digest}",
                                 "{targets}"],
                    "check": ["/opt/deploy/is-live.sh", "{digest}", "{targets}"],
                    "timeout_seconds": 600},
    },
    ExecutorKind.WEBHOOK: {
        "help": "forward_url and backward_url: where a wave's job is started (POST) in the CD system; status_url "
                "(with {job}): where it is followed until its state, read at state_path, is one of succeeded_states "
                "or failed_states; job_id_path: where the answer gives the job's id (a dotted path, items.0.id). "
                "lookup_url (optional, with {key}): finds the job an interrupted step started. token_env (optional): "
                "the NAME of the workers' environment variable holding the bearer token, never the token. "
                "poll_interval_seconds and timeout_seconds are optional.",
        "example": {"forward_url": "https://cd.example.com/api/deploy/{environment}?digest={digest}",
                    "backward_url": "https://cd.example.com/api/deploy/{environment}?digest={previous_digest}",
                    "status_url": "https://cd.example.com/api/jobs/{job}",
                    "job_id_path": "id", "state_path": "state",
                    "succeeded_states": ["succeeded"], "failed_states": ["failed", "cancelled"],
                    "token_env": "CD_TOKEN", "timeout_seconds": 600},
    },
    ExecutorKind.KUBERNETES: {
        "help": "A wave's targets are Deployments (name or namespace/name); each gets image_repository@digest in "
                "its container and is followed until rolled out. api_server with token_env (the NAME of the workers' "
                "environment variable holding the token, never the token) and an optional ca_file, or kubeconfig (a "
                "path on the workers). namespace, container and image_repository are required; "
                "rollout_timeout_seconds and poll_interval_seconds are optional.",
        "example": {"api_server": "https://kubernetes.example.com:6443", "token_env": "KUBE_TOKEN",
                    "ca_file": "/etc/changeboard/kube-ca.pem", "namespace": "shop", "container": "api",
                    "image_repository": "registry.example.com/shop/api", "rollout_timeout_seconds": 600},
    },
}


def executor_help(kind: str) -> dict[str, str]:
    """The help and the example (as JSON text) for an executor kind; the command's for a kind it does not know."""
    chosen = EXECUTOR_HELP.get(kind, EXECUTOR_HELP[ExecutorKind.COMMAND])
    return {"kind": kind if kind in EXECUTOR_HELP else ExecutorKind.COMMAND, "help": chosen["help"],
            "example": json.dumps(chosen["example"], indent=2)}


class JSONObjectField(forms.CharField):
    """JSON text in a textarea, parsed with the project's bounds (depth, NUL, numbers jsonb cannot hold)."""

    widget = forms.Textarea(attrs={"rows": 10, "spellcheck": "false", "class": "code"})

    def prepare_value(self, value):
        return json.dumps(value, indent=2) if isinstance(value, dict | list) else value

    def to_python(self, value):
        text = super().to_python(value)
        if not text.strip():
            return {}
        try:
            parsed = json_parsed(text)
        except JSONRefused as refusal:
            where = f" at line {refusal.line}" if refusal.line else f" at {refusal.path}" if refusal.path else ""
            raise forms.ValidationError(f"The settings are {refusal.message.rstrip('.')}{where}.",
                                        code=refusal.code) from None
        if not isinstance(parsed, dict):
            raise forms.ValidationError('The settings are a JSON object: {"name": value, ...}.', code="not_object")
        return parsed


class ArgumentListField(forms.CharField):
    """A command as a textarea, one argument per line (an argument may hold spaces: there is no shell)."""

    widget = forms.Textarea(attrs={"rows": 3, "spellcheck": "false", "class": "code"})

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("max_length", 20_000)
        super().__init__(**kwargs)

    def prepare_value(self, value):
        return "\n".join(value) if isinstance(value, list | tuple) else value

    # A list where CharField gives a string: the point of the field.
    def to_python(self, value) -> list[str]:  # type: ignore[override]
        return [line.strip() for line in (super().to_python(value) or "").splitlines() if line.strip()]

    def run_validators(self, value) -> None:
        super().run_validators("\n".join(value))


class PlanForm(forms.Form):
    """A plan's own fields; its service and environment only while it is made."""

    service = forms.ModelChoiceField(queryset=ConfigurationItem.objects.order_by("name"), empty_label="Pick a service")
    environment = forms.ModelChoiceField(queryset=Environment.objects.order_by("position"),
                                         empty_label="Pick an environment")
    executor = forms.ChoiceField(choices=ExecutorKind.choices)
    executor_settings = JSONObjectField(label="Executor settings (JSON)", required=False,
                                        max_length=plans.MAX_SETTINGS_CHARS)
    require_rehearsal = forms.BooleanField(required=False, label="Require a rehearsed rollback",
                                           help_text=DeploymentPlan._meta.get_field("require_rehearsal").help_text)
    rollout_repeatable = forms.BooleanField(required=False, label="A wave's rollout may run twice",
                                            help_text=DeploymentPlan._meta.get_field("rollout_repeatable").help_text)

    def __init__(self, *args, plan: DeploymentPlan | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if plan is not None:
            del self.fields["service"], self.fields["environment"]


class WaveForm(forms.Form):
    name = forms.CharField(max_length=100)
    targets = WordListField(max_items=plans.MAX_TARGETS, help_text="One per line, or separated by commas.",
                            widget=forms.Textarea(attrs={"rows": 2}))
    bake_seconds = forms.IntegerField(label="Bake (s)", min_value=0, max_value=LONGEST_STEP_SECONDS, initial=0)
    manual_gate = forms.BooleanField(required=False, label="Manual gate")

    def as_input(self) -> plans.WaveInput:
        data = self.cleaned_data
        return plans.WaveInput(name=data["name"], targets=data["targets"], bake_seconds=data["bake_seconds"],
                               manual_gate=data["manual_gate"])


class CheckForm(forms.Form):
    name = forms.CharField(max_length=100)
    phase = forms.ChoiceField(choices=CheckPhase.choices)
    kind = forms.ChoiceField(choices=HealthCheck.Kind.choices, initial=HealthCheck.Kind.HTTP)
    url = forms.CharField(label="URL", max_length=500, help_text=HealthCheck._meta.get_field("url").help_text)
    expected_status = forms.IntegerField(min_value=100, max_value=599, initial=200, required=False,
                                         help_text="HTTP probe")
    body_contains = forms.CharField(max_length=200, required=False, help_text="HTTP probe")
    max_latency_ms = forms.IntegerField(label="Max latency (ms)", min_value=1, required=False,
                                        help_text="HTTP probe")
    query = forms.CharField(label="PromQL", max_length=5000, required=False, help_text="Metric check",
                            widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false", "class": "code"}))
    threshold = forms.FloatField(required=False, help_text="Metric check")
    fails_when = forms.ChoiceField(choices=HealthCheck.FailsWhen.choices, initial=HealthCheck.FailsWhen.ABOVE)
    measures = forms.ChoiceField(choices=HealthCheck.Measures.choices, required=False,
                                 help_text="For the change's rollback triggers")

    def as_input(self) -> plans.CheckInput:
        data = self.cleaned_data
        http = data["kind"] == HealthCheck.Kind.HTTP
        return plans.CheckInput(
            name=data["name"], phase=data["phase"], kind=data["kind"], url=data["url"],
            expected_status=data["expected_status"] if data["expected_status"] is not None else 200,
            body_contains=data["body_contains"] if http else "",
            max_latency_ms=data["max_latency_ms"] if http else None,
            query="" if http else data["query"], threshold=None if http else data["threshold"],
            fails_when=data["fails_when"], measures=data["measures"] or "")


class MigrationForm(forms.Form):
    """A plan's migration; `include` unticked means the plan migrates nothing (and a saved migration goes)."""

    include = forms.BooleanField(required=False, label="This plan migrates a database before its first wave")
    forward = ArgumentListField(label="Forward command", help_text="One argument per line.")
    forward_schema_version = forms.CharField(label="Schema version it leaves", max_length=100, required=False)
    backward = ArgumentListField(label="Backward command", help_text="One argument per line; empty if it cannot be "
                                                                      "undone (a rollback then stops for a person).")
    backward_schema_version = forms.CharField(label="Schema version going back leaves", max_length=100,
                                              required=False)
    version_command = ArgumentListField(label="Version command",
                                        help_text="Prints the schema version in force; one argument per line.")
    timeout_seconds = forms.IntegerField(label="Timeout (s)", min_value=1, max_value=LONGEST_STEP_SECONDS,
                                         initial=600, required=False)

    def as_input(self) -> plans.MigrationInput | None:
        data = self.cleaned_data
        if not data["include"]:
            return None
        return plans.MigrationInput(forward=data["forward"], forward_schema_version=data["forward_schema_version"],
                                    backward=data["backward"], backward_schema_version=data["backward_schema_version"],
                                    version_command=data["version_command"],
                                    timeout_seconds=data["timeout_seconds"] or 600)


class BaseWaveFormSet(forms.BaseFormSet):
    def add_fields(self, form, index) -> None:
        super().add_fields(form, index)
        form.fields["ORDER"].widget.attrs.update({"placeholder": "last", "min": "1"})


# Formsets are bounded beyond the plan's own limits, so a forged form count is an error, never a thousand forms.
WaveFormSet = forms.formset_factory(WaveForm, formset=BaseWaveFormSet, extra=0, can_order=True, can_delete=True,
                                    max_num=plans.MAX_WAVES, absolute_max=plans.MAX_WAVES, validate_max=True)
CheckFormSet = forms.formset_factory(CheckForm, extra=0, can_delete=True, max_num=plans.MAX_CHECKS,
                                     absolute_max=plans.MAX_CHECKS, validate_max=True)


def plan_initial(given: plans.PlanInput) -> dict:
    """A saved plan as the initial values of the editor's forms."""
    migration = asdict(given.migration) if given.migration is not None else {}
    return {
        "plan": {"executor": given.executor, "executor_settings": given.executor_settings,
                 "require_rehearsal": given.require_rehearsal, "rollout_repeatable": given.rollout_repeatable},
        "waves": [{**asdict(wave), "ORDER": position} for position, wave in enumerate(given.waves, start=1)],
        "checks": [asdict(check) for check in given.checks],
        "migration": {**migration, "include": given.migration is not None},
    }

"""What the evidence API answers: a period's population page, its exceptions, its control tests and its
reconciliation, each written as the bundle writes the same records."""

from rest_framework import serializers

from governance.evidence.period import Period
from governance.models import EvidenceScope


class PeriodSerializer(serializers.Serializer):
    start = serializers.DateTimeField(help_text="Inclusive.")
    end = serializers.DateTimeField(help_text="Exclusive: an end date given counts whole.")
    scope = serializers.ChoiceField(choices=EvidenceScope.choices)


def period_data(period: Period) -> dict:
    return dict(PeriodSerializer(period).data)


class ApprovalGivenSerializer(serializers.Serializer):
    approver = serializers.CharField()
    role = serializers.CharField()
    decided_at = serializers.DateTimeField()


class PopulationRowSerializer(serializers.Serializer):
    """One production deployment matched to its change (population.row_dict writes it)."""

    deployment = serializers.CharField(help_text="DEP number.")
    kind = serializers.ChoiceField(choices=["reported", "run"])
    service = serializers.CharField()
    environment = serializers.CharField()
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    status = serializers.CharField()
    artifact_version = serializers.CharField()
    digest = serializers.CharField()
    change_number = serializers.CharField(help_text='"" when none.')
    change_type = serializers.CharField()
    risk_level = serializers.CharField()
    change_status = serializers.CharField()
    requester = serializers.CharField()
    implementer = serializers.CharField()
    approvals = ApprovalGivenSerializer(many=True, help_text="The approvals given to the change's revision.")
    test_evidence = serializers.CharField()
    approved_digests = serializers.ListField(child=serializers.CharField(), help_text="Empty: any build.")
    check_id = serializers.CharField(help_text='The allowing gate check; "" when none.')


class PopulationPageSerializer(serializers.Serializer):
    period = PeriodSerializer()
    count = serializers.IntegerField()
    page = serializers.IntegerField()
    page_size = serializers.IntegerField()
    results = PopulationRowSerializer(many=True)


class EvidenceExceptionSerializer(serializers.Serializer):
    kind = serializers.CharField()
    key = serializers.CharField(help_text="kind:record, what an auditor's note names.")
    record = serializers.CharField(help_text="The DEP or CHG number it is about.")
    reason = serializers.CharField()
    evidence = serializers.DictField(help_text="The facts behind it.")


class ExceptionsSerializer(serializers.Serializer):
    period = PeriodSerializer()
    count = serializers.IntegerField()
    results = EvidenceExceptionSerializer(many=True)


class ControlResultSerializer(serializers.Serializer):
    control = serializers.CharField()
    name = serializers.CharField()
    criteria = serializers.CharField()
    passed = serializers.BooleanField()
    tested = serializers.IntegerField(help_text="How many records the control was tested over.")
    exception_keys = serializers.ListField(child=serializers.CharField())


class ControlsSerializer(serializers.Serializer):
    period = PeriodSerializer()
    results = ControlResultSerializer(many=True)


class UnpairedSerializer(serializers.Serializer):
    side = serializers.ChoiceField(choices=["gate_check", "deployment", "change"])
    record = serializers.CharField()
    reason = serializers.CharField()


class ReconciliationSerializer(serializers.Serializer):
    period = PeriodSerializer()
    counts = serializers.DictField(child=serializers.IntegerField())
    unpaired = UnpairedSerializer(many=True)

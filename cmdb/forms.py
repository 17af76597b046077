"""Forms of the CMDB's pages."""

from django import forms

from cmdb.models import ConfigurationItem


class CIComplianceForm(forms.ModelForm):
    """A CI's compliance flags and tier, with the reason for changing them that the ledger keeps."""

    class Meta:
        model = ConfigurationItem
        fields = [*ConfigurationItem.COMPLIANCE_FIELDS, "compliance_reason"]
        labels = {"compliance_reason": "Why they change"}
        widgets = {"compliance_reason": forms.TextInput(attrs={"size": 80})}

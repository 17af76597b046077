from django import forms

from cmdb.models import ConfigurationItem, Environment
from cmdb.selectors import cis_named
from governance.core.inputs import WordListField


class ApiTokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What uses it, e.g. 'payments pipeline'.")
    expires_days = forms.IntegerField(
        required=False, min_value=1, max_value=3650, label="Expires after (days)",
        help_text="Leave empty for a token that lasts until revoked.",
    )
    services = WordListField(
        required=False, label="Only for these services", widget=forms.TextInput,
        help_text="CI names separated by commas; a pipeline's token names what it deploys. Empty: any.",
    )
    environments = forms.ModelMultipleChoiceField(
        queryset=Environment.objects.order_by("position"), required=False, widget=forms.CheckboxSelectMultiple,
        label="Only for these environments", help_text="None ticked: any.",
    )

    def clean_services(self) -> list[ConfigurationItem]:
        services, unknown = cis_named(self.cleaned_data["services"])
        if unknown:
            raise forms.ValidationError(f"No configuration item is named {unknown[0]!r}.")
        return services

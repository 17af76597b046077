from django import forms

from cmdb.models import ConfigurationItem, Environment
from cmdb.selectors import cis_named
from governance.access.selectors import may_issue_for_others, token_owners_for
from governance.core.inputs import WordListField


class OwnerField(forms.ModelChoiceField):
    def label_from_instance(self, obj) -> str:
        name = obj.get_full_name()
        return f"{name} ({obj.get_username()})" if name else obj.get_username()


class ApiTokenForm(forms.Form):
    owner = OwnerField(queryset=None, required=False, empty_label=None, label="For",
                       help_text="You, or a service account (a pipeline) you issue it for.")
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

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        if may_issue_for_others(user):
            self.fields["owner"].queryset = token_owners_for(user)  # type: ignore[attr-defined]
            self.fields["owner"].initial = user.pk
        else:  # nobody to choose but oneself: no picker
            del self.fields["owner"]

    def clean_services(self) -> list[ConfigurationItem]:
        services, unknown = cis_named(self.cleaned_data["services"])
        if unknown:
            raise forms.ValidationError(f"No configuration item is named {unknown[0]!r}.")
        return services

    def chosen_owner(self):
        """The owner picked, or the person filling the form in when there is no picker or nothing was picked."""
        return self.cleaned_data.get("owner") or self.user

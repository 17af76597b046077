from django import forms

from cmdb.models import ConfigurationItem, Environment, Team


class CalendarFilterForm(forms.Form):
    view = forms.ChoiceField(choices=[("month", "Month"), ("week", "Week")], required=False)
    date = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    team = forms.ModelChoiceField(Team.objects.all(), to_field_name="slug", required=False, empty_label="any team")
    environment = forms.ModelChoiceField(Environment.objects.all(), to_field_name="name", required=False,
                                         empty_label="any environment")
    ci = forms.ModelChoiceField(ConfigurationItem.objects.all(), to_field_name="name", required=False,
                                widget=forms.TextInput(attrs={"placeholder": "CI name"}), label="CI")

    def clean_date(self):
        day = self.cleaned_data["date"]
        if day is not None and not 1900 <= day.year <= 9000:
            raise forms.ValidationError("Pick a date between 1900 and 9000.")
        return day


class LockdownForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), help_text="What happened; shown everywhere.")
    environment = forms.ModelChoiceField(Environment.objects.all(), to_field_name="name", required=False,
                                         empty_label="everything", help_text="Leave empty to stop everything.")
    until = forms.DateTimeField(required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
                                help_text="UTC; leave empty to hold until lifted.")


class FeedForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="Where you will use it, e.g. 'Outlook at work'.")
    team = forms.ModelChoiceField(Team.objects.all(), to_field_name="slug", required=False,
                                  empty_label="the whole calendar", help_text="Only this team's scope.")

from django import forms

from meetings.models import AuditEvent

from .models import ModelVersion, SiteSettings


class ImportForm(forms.Form):
    path = forms.CharField(max_length=1000, label="Folder on this server",
                           help_text="The full path of the copied model folder, e.g. /srv/models/voxtral-mini-4b-realtime.")
    kind = forms.ChoiceField(choices=[("", "Recognise from the folder")] + list(ModelVersion.Kind.choices), required=False, label="Kind")
    name = forms.CharField(max_length=200, required=False, label="Name",
                           help_text="How this version is listed. Empty: the folder's name.")


class SiteSettingsForm(forms.ModelForm):
    class Meta:
        model = SiteSettings
        fields = ["live_delay_ms", "reprocess_delay_ms", "max_live_streams", "audio_retention_days", "transcript_retention_days",
                  "voice_match_threshold", "voiceprint_retention_days"]
        widgets = {"live_delay_ms": forms.NumberInput(attrs={"step": 80, "min": 80, "max": 2400}),
                   "reprocess_delay_ms": forms.NumberInput(attrs={"step": 80, "min": 80, "max": 2400})}


class AuditFilterForm(forms.Form):
    user = forms.CharField(max_length=150, required=False, label="User name")
    action = forms.ChoiceField(choices=[("", "Any action")] + list(AuditEvent.Action.choices), required=False, label="Action")
    date_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="To (inclusive)", widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        data = super().clean()
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            raise forms.ValidationError("The start date is after the end date.")
        return data

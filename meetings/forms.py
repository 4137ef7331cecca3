from django import forms
from django.contrib.auth.models import Group, User

from .models import Meeting, Sharing


class MeetingForm(forms.ModelForm):
    delay_ms = forms.IntegerField(
        min_value=80, max_value=2400, step_size=80, initial=480, label="Caption delay (ms)",
        help_text="How far captions trail speech, 80 to 2400 ms in steps of 80. Longer delays are more accurate.",
        error_messages={"step_size": "The caption delay must be a multiple of 80 ms."},
    )

    class Meta:
        model = Meeting
        fields = ["title", "language", "delay_ms"]
        labels = {"language": "Spoken language"}


class SegmentEditForm(forms.Form):
    text = forms.CharField(max_length=20_000, widget=forms.Textarea(attrs={"rows": 2}))


class SpeakerRenameForm(forms.Form):
    display_name = forms.CharField(max_length=100, required=False, label="Name")


class ShareForm(forms.Form):
    username = forms.CharField(max_length=150, required=False, label="Person (user name)")
    group = forms.CharField(max_length=150, required=False, label="or group")
    role = forms.ChoiceField(choices=Sharing.Role.choices)

    def clean(self):
        data = super().clean()
        username, group = data.get("username", "").strip(), data.get("group", "").strip()
        if bool(username) == bool(group):
            raise forms.ValidationError("Enter either a user name or a group name.")
        if username:
            data["user_obj"] = User.objects.filter(username__iexact=username, is_active=True).first()
            if data["user_obj"] is None:
                raise forms.ValidationError(f"No active user is called {username!r}.")
        else:
            data["group_obj"] = Group.objects.filter(name__iexact=group).first()
            if data["group_obj"] is None:
                raise forms.ValidationError(f"No group is called {group!r}.")
        return data


class SearchForm(forms.Form):
    q = forms.CharField(max_length=500, required=False, label="Search transcripts")
    meeting = forms.IntegerField(required=False, widget=forms.HiddenInput)
    speaker = forms.CharField(max_length=100, required=False)
    person = forms.CharField(max_length=20, required=False)
    date_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))
    page = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

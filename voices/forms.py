from django import forms
from django.contrib.auth.models import User


class VoiceEnrolForm(forms.Form):
    WHO = [("me", "Me"), ("user", "A colleague with a Scribe account"), ("person", "Someone else")]

    who = forms.ChoiceField(choices=WHO, widget=forms.RadioSelect, initial="me", label="Whose voice is this?")
    username = forms.CharField(max_length=150, required=False, label="Their user name")
    person_name = forms.CharField(max_length=100, required=False, label="Their name")
    remember = forms.BooleanField(required=False, label="Remember this voice")
    consent = forms.BooleanField(required=False, label="They agreed to have their voice remembered")

    def clean(self):
        data = super().clean()
        who = data.get("who")
        if who == "user":
            name = data.get("username", "").strip()
            data["user_obj"] = User.objects.filter(username__iexact=name, is_active=True).first() if name else None
            if data["user_obj"] is None:
                raise forms.ValidationError(f"No active user is called {name!r}." if name else "Enter their user name.")
        elif who == "person" and not data.get("person_name", "").strip():
            raise forms.ValidationError("Enter the name of the person whose voice this is.")
        return data

from django import forms

from .models import CaptionPreferences


class CaptionPreferencesForm(forms.ModelForm):
    class Meta:
        model = CaptionPreferences
        fields = ["font_size", "lines", "theme"]
        labels = {"font_size": "Text size (pixels)", "lines": "Lines shown", "theme": "Colours"}
        widgets = {"font_size": forms.NumberInput(attrs={"step": 2}), "theme": forms.Select()}

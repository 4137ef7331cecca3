from django import forms

from .models import CaptionPreferences


def _limits(name: str) -> tuple[int, int]:
    """The model's own bounds, so the page states the limits the database enforces."""
    field = CaptionPreferences._meta.get_field(name)
    low = next(v.limit_value for v in field.validators if v.code == "min_value")
    high = next(v.limit_value for v in field.validators if v.code == "max_value")
    return low, high


FONT_MIN, FONT_MAX = _limits("font_size")
LINES_MIN, LINES_MAX = _limits("lines")


class CaptionPreferencesForm(forms.ModelForm):
    font_size = forms.IntegerField(label="Text size (pixels)", min_value=FONT_MIN, max_value=FONT_MAX,
                                   help_text=f"From {FONT_MIN} to {FONT_MAX} pixels.", widget=forms.NumberInput(attrs={"step": 2}))
    lines = forms.IntegerField(label="Lines shown", min_value=LINES_MIN, max_value=LINES_MAX, help_text=f"From {LINES_MIN} to {LINES_MAX} lines.")

    class Meta:
        model = CaptionPreferences
        fields = ["font_size", "lines", "theme"]
        labels = {"theme": "Colours"}
        widgets = {"theme": forms.Select()}

    def errors_by_field(self) -> dict[str, str]:
        """Each error with the name of its field in front, as a person reads it on the page."""
        return {name: f"{self.fields[name].label if name in self.fields else 'Settings'}: {' '.join(errors)}" for name, errors in self.errors.items()}

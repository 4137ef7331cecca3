from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class CaptionPreferences(models.Model):
    """How one person likes live captions shown; kept so every meeting opens the same way."""

    class Theme(models.TextChoices):
        LIGHT = "light", "Light"
        DARK = "dark", "Dark"
        CONTRAST = "contrast", "High contrast (yellow on black)"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="caption_preferences")
    font_size = models.PositiveSmallIntegerField(default=32, validators=[MinValueValidator(16), MaxValueValidator(96)], help_text="Caption text size in pixels.")
    lines = models.PositiveSmallIntegerField(default=6, validators=[MinValueValidator(2), MaxValueValidator(20)], help_text="How many lines of captions show at once.")
    theme = models.CharField(max_length=16, choices=Theme.choices, default=Theme.DARK)

    def __str__(self):
        return f"Caption preferences of {self.user}"

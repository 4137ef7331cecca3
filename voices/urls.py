from django.urls import path

from . import views

app_name = "voices"

urlpatterns = [
    path("meetings/<int:meeting_id>/speakers/<int:speaker_id>/voice", views.voice_enrol, name="enrol"),
    path("meetings/<int:meeting_id>/speakers/<int:speaker_id>/identity/remove", views.speaker_unlink, name="unlink"),
    path("voices/", views.my_voices, name="mine"),
    path("voices/<int:voiceprint_id>/delete", views.voice_delete, name="delete"),
    path("console/voices/", views.console_voices, name="console"),
    path("console/voices/<int:voiceprint_id>/delete", views.console_voice_delete, name="console_delete"),
    path("console/voices/people/<int:person_id>/delete", views.console_person_delete, name="console_person_delete"),
    path("console/voices/purge", views.console_purge, name="console_purge"),
]

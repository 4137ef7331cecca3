from django.urls import path

from . import views

app_name = "live"

urlpatterns = [
    path("meetings/<int:meeting_id>/live/host", views.live_host, name="host"),
    path("meetings/<int:meeting_id>/live/recorder", views.live_recorder, name="recorder"),
    path("meetings/<int:meeting_id>/live/", views.live_follow, name="follow"),
    path("live/preferences", views.caption_preferences, name="preferences"),
]

from django.urls import path

from . import views

app_name = "meetings"

urlpatterns = [
    path("", views.meeting_list, name="list"),
    path("meetings/new", views.meeting_create, name="create"),
    path("meetings/<int:meeting_id>/", views.meeting_detail, name="detail"),
    path("meetings/<int:meeting_id>/settings", views.meeting_settings, name="settings"),
    path("meetings/<int:meeting_id>/delete", views.meeting_delete, name="delete"),
    path("meetings/<int:meeting_id>/segments/<int:segment_id>", views.segment_edit, name="segment_edit"),
    path("meetings/<int:meeting_id>/speakers/<int:speaker_id>", views.speaker_rename, name="speaker_rename"),
    path("meetings/<int:meeting_id>/speakers/merge", views.speaker_merge, name="speaker_merge"),
    path("meetings/<int:meeting_id>/sharing", views.meeting_share, name="share"),
    path("meetings/<int:meeting_id>/sharing/<int:sharing_id>/remove", views.meeting_unshare, name="unshare"),
    path("meetings/<int:meeting_id>/export/<str:fmt>", views.meeting_export, name="export"),
    path("meetings/<int:meeting_id>/recordings/<int:recording_id>/audio", views.recording_media, name="recording_media"),
    path("search", views.search, name="search"),
]

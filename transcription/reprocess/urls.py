from django.urls import path

from . import views

app_name = "reprocess"

urlpatterns = [
    path("meetings/<int:meeting_id>/recordings/upload", views.recording_upload, name="upload"),
    path("meetings/<int:meeting_id>/recordings/uploads", views.upload_start, name="upload_start"),
    path("meetings/<int:meeting_id>/recordings/uploads/<str:token>", views.upload_piece, name="upload_piece"),
    path("meetings/<int:meeting_id>/recordings/uploads/<str:token>/finish", views.upload_finish, name="upload_finish"),
    path("meetings/<int:meeting_id>/reprocessing", views.reprocess_status, name="status"),
    path("meetings/<int:meeting_id>/reprocessing/<int:job_id>/cancel", views.reprocess_cancel_view, name="cancel"),
    path("meetings/<int:meeting_id>/reprocessing/retry", views.reprocess_retry, name="retry"),
    path("meetings/<int:meeting_id>/reprocessing/speakers", views.speakers_again, name="speakers"),
]

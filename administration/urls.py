from django.urls import path

from . import views

app_name = "console"

urlpatterns = [
    path("", views.status_page, name="status"),
    path("models/", views.model_list, name="models"),
    path("models/import", views.model_import, name="model_import"),
    path("models/<int:version_id>/", views.model_detail, name="model"),
    path("models/<int:version_id>/progress", views.model_progress, name="model_progress"),
    path("models/<int:version_id>/verify", views.model_verify, name="model_verify"),
    path("models/<int:version_id>/activate", views.model_activate, name="model_activate"),
    path("models/rollback/<str:kind>", views.model_rollback, name="model_rollback"),
    path("settings", views.site_settings, name="settings"),
    path("audit/", views.audit_log, name="audit"),
    path("audit/export.csv", views.audit_export, name="audit_export"),
]

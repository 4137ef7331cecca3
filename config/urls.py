from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from .health import healthz

urlpatterns = [
    path("", include("meetings.urls")),
    path("", include("transcription.urls")),
    path("", include("transcription.reprocess.urls")),
    path("", include("voices.urls")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("console/", include("administration.urls")),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
]

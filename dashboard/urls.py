from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from dashboard import (
    views,
    views_alerts,
    views_build,
    views_bulk,
    views_container_io,
    views_containers,
    views_events,
    views_favicon,
    views_files,
    views_health,
    views_image_io,
    views_images,
    views_jobs,
    views_logs,
    views_metrics,
    views_networks,
    views_registries,
    views_revisions,
    views_run,
    views_update,
    views_users,
    views_volume_backup,
    views_volumes,
)
from dashboard.views_auth import BerthLoginView

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", BerthLoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # The admin's own login form would bypass the rate limit: serve ours there too. No redirect for
    # signed-in users here, because the admin sends signed-in non-staff users to this URL (a loop).
    path("admin/login/", BerthLoginView.as_view(redirect_authenticated_user=False)),
    path("admin/", admin.site.urls),
    path("", include(views_bulk)),  # before views_containers: "containers/bulk/run/" is no container
    path("", include(views_run)),  # before views_containers: "containers/run/" is no container
    path("", include(views_containers)),
    path("", include(views_container_io)),
    path("", include(views_logs)),
    path("", include(views_revisions)),
    path("", include(views_update)),
    path("", include(views_images)),
    path("", include(views_build)),
    path("", include(views_image_io)),
    path("", include(views_registries)),
    path("", include(views_volumes)),
    path("", include(views_volume_backup)),
    path("", include(views_networks)),
    path("", include(views_events)),
    path("", include(views_jobs)),
    path("", include(views_files)),
    path("", include(views_metrics)),
    path("", include(views_health)),
    path("", include(views_alerts)),
    path("", include(views_users)),
    path("", include(views_favicon)),
]

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerView

from governance import health, landing
from governance.changes.ical import calendar_feed
from governance.core.api_docs import SchemaView
from governance.core.serving import favicon

api_v1 = [
    path("", include("cmdb.api.urls")),
    path("", include("releases.api.urls")),
    path("", include("governance.gate.api.urls")),
    path("", include("governance.audit.api.urls")),
    path("", include("governance.changes.api.urls")),
    path("", include("governance.calendar.api.urls")),
    path("", include("governance.deployments.api.urls")),
    path("", include("governance.evidence.api.urls")),
    path("", include("governance.itsm.api.urls")),
]

urlpatterns = [
    path("", landing.landing, name="home"),  # by role; also where a login without next= goes
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", health.health, name="health"),
    path("favicon.ico", favicon, name="favicon"),
    path("", include("governance.access.urls")),
    path("", include("governance.audit.urls")),
    path("cmdb/", include("cmdb.urls")),
    path("", include("governance.changes.urls")),
    path("", include("governance.changes.calendar_urls")),
    path("releases/", include("releases.urls")),
    # The gate is governance's, so are its log and the ending of deployments; they sit beside the builds.
    path("releases/", include("governance.gate.urls")),
    path("", include("governance.deployments.urls")),
    path("", include("governance.evidence.urls")),
    path("", include("governance.itsm.urls")),
    path("admin/", admin.site.urls),
    path("calendar/feed/<str:secret>.ics", calendar_feed, name="calendar_feed"),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SchemaView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
]

# Under /api/ these answer in the API's error shape; elsewhere they are Django's own pages.
handler400 = "governance.core.api_errors.bad_request"
handler403 = "governance.core.api_errors.permission_denied"
handler404 = "governance.core.api_errors.page_not_found"
handler500 = "governance.core.api_errors.server_error"

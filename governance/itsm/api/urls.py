from django.urls import path
from rest_framework.routers import SimpleRouter

from governance.itsm.api import views

router = SimpleRouter()
router.register("incidents", views.IncidentViewSet, basename="incident")

urlpatterns = [
    path("incidents/webhook/<slug:source>/", views.IncidentWebhookView.as_view(), name="incident-webhook"),
    *router.urls,
]

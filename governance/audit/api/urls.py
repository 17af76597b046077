from django.urls import path
from rest_framework.routers import SimpleRouter

from governance.audit.api import views

router = SimpleRouter()
router.register("audit/events", views.AuditEventViewSet, basename="audit-event")
router.register("audit/checkpoints", views.AuditCheckpointViewSet, basename="audit-checkpoint")

urlpatterns = [
    path("audit/public-key/", views.PublicKeyView.as_view(), name="audit-public-key"),
    *router.urls,
]

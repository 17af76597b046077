from rest_framework.routers import SimpleRouter

from releases.api import views

router = SimpleRouter()
router.register("artifacts", views.ArtifactViewSet, basename="artifact")
router.register("trusted-keys", views.TrustedKeyViewSet, basename="trusted-key")

urlpatterns = [*router.urls]

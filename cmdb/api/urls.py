from django.urls import path
from rest_framework.routers import SimpleRouter

from cmdb.api import views

router = SimpleRouter()
router.register("teams", views.TeamViewSet, basename="team")
router.register("environments", views.EnvironmentViewSet, basename="environment")
router.register("cis", views.ConfigurationItemViewSet, basename="ci")
router.register("relationships", views.RelationshipViewSet, basename="relationship")

urlpatterns = [
    path("cmdb/import/", views.InventoryImportView.as_view(), name="cmdb-import"),
    *router.urls,
]

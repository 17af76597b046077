from rest_framework.routers import SimpleRouter

from governance.deployments.api import views

router = SimpleRouter()
router.register("rollouts", views.DeploymentViewSet, basename="rollout")
router.register("deployment-plans", views.DeploymentPlanViewSet, basename="deployment-plan")

urlpatterns = router.urls

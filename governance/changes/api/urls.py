from rest_framework.routers import SimpleRouter

from governance.changes.api import views

router = SimpleRouter()
router.register("changes", views.ChangeRequestViewSet, basename="change")
router.register("policies", views.ApprovalPolicyViewSet, basename="approval-policy")

urlpatterns = [*router.urls]

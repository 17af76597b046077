from django.urls import path
from rest_framework.routers import SimpleRouter

from governance.changes.api import views

router = SimpleRouter()
router.register("changes", views.ChangeRequestViewSet, basename="change")
router.register("policies", views.ApprovalPolicyViewSet, basename="approval-policy")
router.register("standard-templates", views.StandardChangeTemplateViewSet, basename="standard-template")

urlpatterns = [
    path("changes/<str:number>/slots/", views.ChangeSlotsView.as_view(), name="change-slots"),
    *router.urls,
]

from django.urls import path

from governance.deployments import views

app_name = "deployments"
urlpatterns = [
    path("deployments/", views.deployment_list, name="deployment_list"),
    # Before deployments/<number>/, which "plans" would match.
    path("deployments/plans/", views.plan_list, name="plan_list"),
    path("deployments/plans/new/", views.plan_create, name="plan_create"),
    path("deployments/plans/executor-help/", views.plan_executor_help, name="plan_executor_help"),
    path("deployments/plans/<int:pk>/", views.plan_edit, name="plan_edit"),
    path("deployments/start/", views.deployment_start, name="deployment_start"),
    path("deployments/of-change/<str:number>/", views.change_deployments, name="change_deployments"),
    path("deployments/<str:number>/", views.deployment_detail, name="deployment_detail"),
    path("deployments/<str:number>/live/", views.deployment_live, name="deployment_live"),
    path("deployments/<str:number>/pause/", views.deployment_pause, name="deployment_pause"),
    path("deployments/<str:number>/resume/", views.deployment_resume, name="deployment_resume"),
    path("deployments/<str:number>/abort/", views.deployment_abort, name="deployment_abort"),
    path("deployments/<str:number>/approve/", views.deployment_approve, name="deployment_approve"),
]

from django.urls import path

from governance.deployments import views

app_name = "deployments"
urlpatterns = [
    path("deployments/", views.deployment_list, name="deployment_list"),
    path("deployments/start/", views.deployment_start, name="deployment_start"),
    path("deployments/<str:number>/", views.deployment_detail, name="deployment_detail"),
    path("deployments/<str:number>/live/", views.deployment_live, name="deployment_live"),
    path("deployments/<str:number>/pause/", views.deployment_pause, name="deployment_pause"),
    path("deployments/<str:number>/resume/", views.deployment_resume, name="deployment_resume"),
    path("deployments/<str:number>/abort/", views.deployment_abort, name="deployment_abort"),
    path("deployments/<str:number>/approve/", views.deployment_approve, name="deployment_approve"),
]

from django.urls import path

from governance.gate import views

app_name = "gate"
urlpatterns = [
    path("gate-log/", views.gate_log, name="gate_log"),
    path("deployments/<str:number>/abandon/", views.deployment_abandon, name="deployment_abandon"),
]

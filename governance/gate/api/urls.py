from django.urls import path

from governance.gate.api import github, views

urlpatterns = [
    path("deployment-checks/", views.DeploymentCheckView.as_view(), name="deployment-check"),
    path("deployments/", views.DeploymentReportView.as_view(), name="deployment-report"),
    path("gates/status/", views.StatusGateView.as_view(), name="gate-status"),
    path("gates/flagger/", views.FlaggerGateView.as_view(), name="gate-flagger"),
    path("github/webhook/", github.GitHubWebhookView.as_view(), name="github-webhook"),
]

from django.urls import path

from releases import views

app_name = "releases"
urlpatterns = [
    path("artifacts/", views.artifact_list, name="artifact_list"),
    path("artifacts/<str:digest>/", views.artifact_detail, name="artifact_detail"),
    path("services/<int:pk>/artifacts/", views.service_artifacts, name="service_artifacts"),
]

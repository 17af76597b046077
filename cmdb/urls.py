from django.urls import path

from cmdb import views

app_name = "cmdb"
urlpatterns = [
    path("", views.ci_list, name="ci_list"),
    path("cis/<int:pk>/", views.ci_detail, name="ci_detail"),
    path("cis/<int:pk>/compliance/", views.ci_compliance, name="ci_compliance"),
]

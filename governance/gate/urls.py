from django.urls import path

from governance.gate import views

app_name = "gate"
urlpatterns = [
    path("", views.gate_log, name="gate_log"),
]

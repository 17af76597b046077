from django.urls import path

from governance.evidence import views_notes

app_name = "evidence"
urlpatterns: list = [
    path("audit/evidence/notes/<str:key>/", views_notes.exception_notes, name="exception_notes"),
]

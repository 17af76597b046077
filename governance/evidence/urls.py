from django.urls import path

from governance.evidence import views, views_bundles, views_notes

app_name = "evidence"
urlpatterns: list = [
    path("audit/evidence/", views.home, name="home"),
    path("audit/evidence/samples/", views.samples, name="samples"),
    path("audit/evidence/changes/<str:number>/", views.change_evidence, name="change_evidence"),
    path("audit/evidence/changes/<str:number>/pdf/", views.change_evidence_pdf, name="change_evidence_pdf"),
    path("audit/evidence/notes/<str:key>/", views_notes.exception_notes, name="exception_notes"),
    path("audit/evidence/bundles/", views_bundles.bundles, name="bundles"),
    path("audit/evidence/bundles/<int:pk>/progress/", views_bundles.bundle_progress, name="bundle_progress"),
    path("audit/evidence/bundles/<int:pk>/download/", views_bundles.bundle_file, name="bundle_file"),
]

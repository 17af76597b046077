from django.urls import path

from governance.evidence.api import views, views_access, views_bundles

urlpatterns: list = [
    path("audit/population/", views.PopulationView.as_view(), name="audit-population"),
    path("audit/exceptions/", views.ExceptionsView.as_view(), name="audit-exceptions"),
    path("audit/controls/", views.ControlsView.as_view(), name="audit-controls"),
    path("audit/reconciliation/", views.ReconciliationView.as_view(), name="audit-reconciliation"),
    path("audit/access-review/", views_access.AccessReviewView.as_view(), name="audit-access-review"),
    path("audit/notes/", views_access.AuditorNoteListView.as_view(), name="audit-note-list"),
    path("audit/bundles/", views_bundles.EvidenceBundleListView.as_view(), name="audit-bundle-list"),
    path("audit/bundles/<str:pk>/", views_bundles.EvidenceBundleDetailView.as_view(), name="audit-bundle-detail"),
    path("audit/bundles/<str:pk>/download/", views_bundles.EvidenceBundleDownloadView.as_view(),
         name="audit-bundle-download"),
]

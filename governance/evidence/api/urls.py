from django.urls import path

from governance.evidence.api import views_access

urlpatterns: list = [
    path("audit/access-review/", views_access.AccessReviewView.as_view(), name="audit-access-review"),
    path("audit/notes/", views_access.AuditorNoteListView.as_view(), name="audit-note-list"),
]

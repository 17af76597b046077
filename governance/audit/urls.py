from django.urls import path

from governance.audit import views

# No namespace: the names predate the split and templates reverse them as they are.
urlpatterns = [
    path("audit/", views.audit_search, name="audit_search"),
    path("audit/key/", views.audit_public_key, name="audit_public_key"),
    path("audit/history/<str:object_type>/<str:object_id>/", views.object_history, name="audit_object_history"),
]

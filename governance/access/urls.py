from django.urls import path

from governance.access import views

# No namespace: the names predate the split and templates reverse them as they are.
urlpatterns = [
    path("tokens/", views.token_list, name="token_list"),
    path("tokens/<int:pk>/revoke/", views.token_revoke, name="token_revoke"),
    path("tokens/<int:pk>/rotate/", views.token_rotate, name="token_rotate"),
]

from django.urls import path

from governance.changes import views

app_name = "governance"
urlpatterns = [
    path("changes/", views.cab_queue, name="cab_queue"),
    path("changes/all/", views.change_list, name="change_list"),
    path("changes/new/", views.change_create, name="change_create"),
    path("changes/ci-search/", views.change_ci_search, name="change_ci_search"),
    path("changes/<str:number>/", views.change_detail, name="change_detail"),
    path("changes/<str:number>/edit/", views.change_edit, name="change_edit"),
    path("changes/<str:number>/decide/", views.change_decide, name="change_decide"),
    path("changes/<str:number>/transition/", views.change_transition, name="change_transition"),
    path("changes/<str:number>/retrospective/", views.change_retrospective, name="change_retrospective"),
    path("cab/meetings/", views.cab_meetings, name="cab_meetings"),
    path("cab/meetings/<int:pk>/", views.cab_meeting_detail, name="cab_meeting_detail"),
    path("cab/meetings/<int:pk>/refresh/", views.cab_meeting_refresh, name="cab_meeting_refresh"),
]

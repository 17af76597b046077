from django.urls import path

from governance.calendar import views

app_name = "calendar"
urlpatterns = [
    path("calendar/", views.calendar_page, name="calendar"),
    path("calendar/feeds/", views.calendar_feeds, name="feeds"),
    path("calendar/feeds/<int:pk>/revoke/", views.calendar_feed_revoke, name="feed_revoke"),
    path("calendar/lockdowns/", views.lockdown_declare, name="lockdown_declare"),
    path("calendar/lockdowns/<int:pk>/lift/", views.lockdown_lift, name="lockdown_lift"),
    path("calendar/changes/<str:number>/slots/", views.change_slots, name="change_slots"),
    path("calendar/changes/<str:number>/reschedule/", views.change_reschedule, name="change_reschedule"),
]

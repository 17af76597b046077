from django.urls import path

from governance.calendar import views
from governance.changes import calendar_views

# The release calendar's pages, the calendar's own and those with the changes on it, under one namespace.
app_name = "calendar"
urlpatterns = [
    path("calendar/", calendar_views.calendar_page, name="calendar"),
    path("calendar/feeds/", calendar_views.calendar_feeds, name="feeds"),
    path("calendar/feeds/<int:pk>/revoke/", views.calendar_feed_revoke, name="feed_revoke"),
    path("calendar/lockdowns/", views.lockdown_declare, name="lockdown_declare"),
    path("calendar/lockdowns/<int:pk>/lift/", views.lockdown_lift, name="lockdown_lift"),
    path("calendar/changes/<str:number>/slots/", calendar_views.change_slots, name="change_slots"),
    path("calendar/changes/<str:number>/reschedule/", calendar_views.change_reschedule, name="change_reschedule"),
]

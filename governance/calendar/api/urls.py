from rest_framework.routers import SimpleRouter

from governance.calendar.api import views

router = SimpleRouter()
router.register("freezes", views.FreezeWindowViewSet, basename="freeze")
router.register("maintenance-windows", views.MaintenanceWindowViewSet, basename="maintenance-window")
router.register("lockdowns", views.LockdownViewSet, basename="lockdown")
router.register("calendar-feeds", views.CalendarFeedViewSet, basename="calendar-feed")

urlpatterns = [*router.urls]

"""The project's URLs, plus a page and an endpoint that fail, to see what a server error answers."""

from django.urls import path

from governance.urls import handler400, handler403, handler404, handler500, urlpatterns  # noqa: F401


def crash(request):
    raise RuntimeError("a defect")


urlpatterns = [path("api/v1/crash/", crash), path("crash/", crash), *urlpatterns]

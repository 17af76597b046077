"""The project's liveness answer."""

from django.db import connection
from django.http import JsonResponse


def health(request):
    """Liveness for load balancers and docker-compose: the process answers and PostgreSQL does too."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})

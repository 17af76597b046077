"""The schema's own view: what a browser shows at /api/schema/. (Not beside the AutoSchema in api_schema: DRF loads
that module while drf_spectacular.views is still importing.)"""

from drf_spectacular.views import SpectacularAPIView


class SchemaView(SpectacularAPIView):
    """The schema, shown by a browser rather than saved: to a request for a page (its Accept names text/html) YAML
    is served as text/plain and JSON (`?format=json`) as application/json, both inline. A client that asks for
    OpenAPI's own media types, for JSON, or for anything (*/*) gets what it got before."""

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        renderer = getattr(response, "accepted_renderer", None)
        if renderer is not None and "text/html" in request.META.get("HTTP_ACCEPT", ""):
            response.content_type = "application/json" if renderer.format == "json" else "text/plain; charset=utf-8"
        return response
